"""Request ids: llmur's own, the client's x-request-id, and the headers that carry them back.

Spend is keyed on llmur's id (SpendLog.request_id, the idempotency key of the spend event), so it
is always generated here: a client that sends the same x-request-id on many requests must not
make them one request. The client's value is kept beside it (SpendLog.client_request_id) and
echoed in the `x-request-id` response header as clients expect; `x-llmur-request-id` always
carries llmur's id.
"""
from __future__ import annotations

import re
import uuid
from typing import Any

_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
LLMUR_HEADER = "x-llmur-request-id"


def new_request_id() -> str:
    return uuid.uuid4().hex


def client_request_id(meta: dict[str, Any]) -> str:
    """The client's x-request-id when it is a sane token, else ""."""
    given = meta.get("HTTP_X_REQUEST_ID")
    return given if given and _SANE.match(given) else ""


def request_id_for(meta: dict[str, Any]) -> str:
    """The id to echo on an answer that books no spend: the client's x-request-id, else a new one."""
    return client_request_id(meta) or new_request_id()


def id_headers(request_id: str, client_id: str) -> dict[str, str]:
    return {"x-request-id": client_id or request_id, LLMUR_HEADER: request_id}
