"""The web server refuses to start on development settings when DEBUG is off.

Commands (migrate, import_events, ...) still run on them; only what serves HTTP calls
`require_safe_server_settings` (funnel_site/wsgi.py, so gunicorn, and run_demo's server).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def server_settings_problems() -> list[str]:
    """What makes the current settings unsafe to serve with (empty when DEBUG is on)."""
    if settings.DEBUG:
        return []
    problems = []
    if settings.SECRET_KEY == settings.INSECURE_SECRET_KEY or len(settings.SECRET_KEY) < 32:
        problems.append("SECRET_KEY is the development fallback (or shorter than 32 characters): set SECRET_KEY "
                        "to a long random value, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'")
    if not settings.ALLOWED_HOSTS or any(h == "*" for h in settings.ALLOWED_HOSTS):
        problems.append("ALLOWED_HOSTS is a wildcard (or empty): set ALLOWED_HOSTS to the host names the "
                        "server answers to, comma separated (a forged Host header would end up in links)")
    return problems


def require_safe_server_settings() -> None:
    """ImproperlyConfigured naming every unsafe setting, unless DEBUG is on."""
    problems = server_settings_problems()
    if problems:
        raise ImproperlyConfigured("refusing to serve with DEBUG off: " + "; ".join(problems))
