"""The configuration fit to print: secrets and URL passwords masked."""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, SecretStr

_SECRET_KEY_NAMES = re.compile(
    r"(secret|passw|api_key|api-key|apikey|master_key|token|credential|private|authorization|access_key)", re.I)
# scheme://user:PASSWORD@host and Go's user:PASSWORD@tcp(host) DSN
_URL_PASSWORD = re.compile(r"(//[^:/@]*:)([^@]+)(@)")
_DSN_PASSWORD = re.compile(r"^([^:@/]*:)([^@]+)(@tcp\()")


_QUERY_SECRET = re.compile(r"([?&][^=&]*(?:pass|secret|token|key)[^=&]*=)([^&]+)", re.I)


def _mask_url(value: str) -> str:
    value = _URL_PASSWORD.sub(r"\1***\3", value)
    value = _QUERY_SECRET.sub(r"\1***", value)
    return _DSN_PASSWORD.sub(r"\1***\3", value)


def masked(value: Any, key: str = "") -> Any:
    """A copy of the configuration fit to print: secrets become '***', URL passwords too."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if not secret:
            return ""
        if _SECRET_KEY_NAMES.search(key):
            return "***"
        shown = _mask_url(secret)
        return shown if "://" in secret or shown != secret else "***"
    if isinstance(value, BaseModel):
        return {k: masked(getattr(value, k), k) for k in type(value).model_fields} | {
            k: masked(v, k) for k, v in (value.model_extra or {}).items()}
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEY_NAMES.search(key) and value:
            return "***"
        return _mask_url(value)
    return value
