"""API authentication: a workspace API key as a Bearer token (our API) or HTTP Basic user (Segment)."""

from __future__ import annotations

import base64

from rest_framework import authentication, exceptions, permissions

from funnel_site.events.models import ApiKey, Workspace


class WorkspacePrincipal:
    """The caller of an API request: a workspace, identified by one of its keys."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.workspace: Workspace = api_key.workspace

    def __str__(self) -> str:
        return f"workspace:{self.workspace.slug}"


def _verify(key: str, request) -> tuple[WorkspacePrincipal, ApiKey]:
    from funnel_site.events.services import api_key_verify
    from funnel_site.events.throttling import FailedKeyThrottle

    failures = FailedKeyThrottle()
    failures.check(request)  # 429 for an address that guessed wrong too often
    api_key = api_key_verify(key=key.strip())
    if api_key is None:
        failures.record_failure(request)
        raise exceptions.AuthenticationFailed("invalid or revoked API key")
    return WorkspacePrincipal(api_key), api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <workspace api key>`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'")
        return _verify(key, request)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class SegmentBasicAuthentication(authentication.BaseAuthentication):
    """Segment's HTTP API auth: HTTP Basic with the write key (our API key) as the user name."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() == "bearer":
            return _verify(encoded, request)
        if scheme.lower() != "basic":
            raise exceptions.AuthenticationFailed("use HTTP Basic auth with the API key as user name")
        try:
            user = base64.b64decode(encoded.strip()).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("malformed Basic credentials") from None
        return _verify(user, request)

    def authenticate_header(self, request) -> str:
        return 'Basic realm="segment"'


class HasWorkspace(permissions.BasePermission):
    """The request was authenticated by a workspace key."""

    message = "an API key is required: Authorization: Bearer <api key>"

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, WorkspacePrincipal)


class WorkspaceRole(permissions.BasePermission):
    """The key's role allows the request: reads need `view.read_role` (default viewer), writes
    `view.write_role` (default editor). Views that change models, keys, destinations, syncs or
    members set `write_role = "admin"`."""

    def has_permission(self, request, view) -> bool:
        from funnel_site.events.roles import EDITOR, VIEWER, role_allows

        principal = request.user
        if not isinstance(principal, WorkspacePrincipal):
            return False
        if request.method in permissions.SAFE_METHODS:
            needed = getattr(view, "read_role", VIEWER)
        else:
            needed = getattr(view, "write_role", EDITOR)
        self.message = f"this API key's role ({principal.api_key.role}) may not do this: it needs {needed}"
        return role_allows(role=principal.api_key.role, needed=needed)


def request_workspace(request) -> Workspace:
    """The workspace of an authenticated API request (the only workspace it may touch)."""
    return request.user.workspace
