"""The two codes of the device flow (RFC 8628): what they look like, how they are read back and stored.

The device_code is the agent's secret (256 random bits). The user_code is what a person types: 8
letters from a 20-consonant alphabet, shown as BCDF-GHJK, which is 20^8 (about 2^34.6) codes, no
vowels (no words), no digits (no 0/O or 1/I confusion), case and punctuation ignored when read
back (RFC 8628 section 6.1). With at most a few thousand codes alive and wrong entries limited per
person and per address (accounts.device_throttle), guessing a live one is out of reach (section
5.1). Both are stored as HMAC digests, never in plaintext.
"""
from __future__ import annotations

import secrets

from accounts.keys import key_digest

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"


def device_code_generate() -> str:
    return secrets.token_urlsafe(32)


def user_code_generate() -> str:
    """A new user code in its display form, e.g. WDJB-MJHT."""
    letters = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{letters[:4]}-{letters[4:]}"


def user_code_normalize(typed: str) -> str | None:
    """The code a person typed, upper-cased without spaces or dashes; None when it cannot be one."""
    letters = "".join(c for c in (typed or "").upper() if c.isalnum())
    if len(letters) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in letters):
        return None
    return letters


def device_code_digest(device_code: str) -> str:
    return key_digest("device-code:" + device_code)


def user_code_digest(normalized: str) -> str:
    return key_digest("user-code:" + normalized)
