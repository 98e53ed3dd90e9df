"""Helpers for the gateway tests: virtual keys created straight in the database the server reads."""
from __future__ import annotations

import pytest


@pytest.fixture
def make_key(transactional_db):
    """Create a VirtualKey (and optionally owners) and return its plaintext."""
    from accounts.keys import key_digest, key_display, key_generate
    from accounts.models import VirtualKey

    def make(**fields) -> str:
        plaintext = key_generate()
        VirtualKey.objects.create(key_hash=key_digest(plaintext), display=key_display(plaintext), **fields)
        return plaintext

    return make
