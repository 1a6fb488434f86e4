"""Secret arguments at rest: sealed with a key derived from the site's SECRET_KEY, opened only to run them.

A copy of the database alone reveals nothing; SECRET_KEY_FALLBACKS still open what an earlier key sealed,
so a rotated key does not strand the secrets of runs that may be re-run.
"""

from __future__ import annotations

import base64
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac

SALT = "console.jobs.vault"


class Unsealable(Exception):
    """The secrets were sealed with a key this site no longer has."""


def _fernet(secret_key: str | bytes) -> Fernet:
    digest = salted_hmac(SALT, "secret job arguments", secret=secret_key, algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    return MultiFernet([_fernet(key) for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def seal(values: dict[int, str]) -> str:
    """``values`` (argv position -> secret) as one encrypted token; empty when there is nothing to hide."""
    if not values:
        return ""
    return _keys().encrypt(json.dumps({str(i): value for i, value in values.items()}).encode()).decode()


def unseal(token: str) -> dict[int, str]:
    if not token:
        return {}
    try:
        data = _keys().decrypt(token.encode())
    except InvalidToken as exc:
        raise Unsealable("The secret arguments were encrypted with a SECRET_KEY this site no longer has.") from exc
    return {int(i): value for i, value in json.loads(data).items()}
