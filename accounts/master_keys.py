"""The master keys: those the configuration names, or the one generated on first start and kept only as its digest."""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from accounts.keys import key_digest, key_generate


def master_key_file() -> Path:
    return Path(settings.LLMUR.var_dir) / "master_key.hmac"


def ensure_master_key() -> str | None:
    """With no master key configured, generate one on first start and keep only its HMAC.

    Returns the plaintext when it was generated now (to print once), else None.
    """
    if settings.LLMUR.master_keys:
        return None
    path = master_key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    plaintext = key_generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as handle:
        handle.write(key_digest(plaintext))
    return plaintext


def master_key_digests() -> frozenset[str]:
    """HMAC digests (accounts.keys.key_digest) of every valid master key.

    The configured master_keys plus the one generated on first start, which exists only as its
    digest in var/master_key.hmac. Auth compares a bearer key's digest against this set.
    """
    digests = {key_digest(key) for key in settings.LLMUR.master_keys}
    try:
        stored = master_key_file().read_text().strip()
    except OSError:
        stored = ""
    if stored and not settings.LLMUR.master_keys:
        digests.add(stored)
    return frozenset(digests)
