"""Credentials at rest: Fernet with keys from settings (MultiFernet, so a key can be rotated)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def fernet_keys() -> list[bytes]:
    """The configured keys, newest first: INTEGRATIONS_FERNET_KEY (comma separated) or one derived
    from SECRET_KEY, so a deployment without the setting still encrypts (and rotating SECRET_KEY
    without listing the old derived key would make stored credentials unreadable: say so)."""
    configured = getattr(settings, "INTEGRATIONS_FERNET_KEY", "") or ""
    keys = [k.strip().encode() for k in configured.split(",") if k.strip()]
    if not keys:
        digest = hashlib.sha256(b"integrations-credentials:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest)]
    return keys


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in fernet_keys()])


def encrypt_json(value: dict) -> str:
    """A Fernet token of the JSON of `value` (text, fits a TextField)."""
    return _fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


class CredentialsUnreadable(RuntimeError):
    """Stored credentials do not decrypt with any configured key."""


def decrypt_json(token: str) -> dict:
    """The dict stored by `encrypt_json`; raises CredentialsUnreadable naming the setting to check."""
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsUnreadable(
            "stored credentials do not decrypt: INTEGRATIONS_FERNET_KEY (or SECRET_KEY) changed; list the old key too"
        ) from None
