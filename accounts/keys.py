"""Key material: generation, HMAC digests, display forms and encryption of provider secrets.

Keys are stored only as HMAC-SHA256 under application_secret, so a database dump reveals no key
and a lookup is one indexed equality on the digest. Provider credentials must be recoverable for
the upstream call, so they are encrypted (Fernet) under a key derived from the same secret.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

KEY_PREFIX = "sk-"


def key_generate() -> str:
    """A new virtual key: sk- followed by 192 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def key_digest(plaintext: str, *, secret: str | None = None) -> str:
    """The HMAC-SHA256 hex digest under which a key is stored and looked up."""
    secret = secret or settings.SECRET_KEY
    return hmac.new(secret.encode(), plaintext.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def key_display(plaintext: str) -> str:
    """The recognizable form shown after creation, e.g. sk-…a1b2."""
    return f"{plaintext[:3]}…{plaintext[-4:]}"


def digests_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"llmur-credentials",
                   info=b"provider-credentials").derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def secret_encrypt(plaintext: str) -> str:
    return _fernet(settings.SECRET_KEY).encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    """Decrypts a stored provider secret; a changed application_secret makes this fail loudly."""
    try:
        return _fernet(settings.SECRET_KEY).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("stored credential cannot be decrypted: was application_secret changed?") from None
