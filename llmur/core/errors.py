"""The one domain error, raised anywhere and rendered in the OpenAI (or Anthropic) error shape."""
from __future__ import annotations

from typing import Any

ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                   504: "timeout_error"}


def shown(text: str, limit: int = 200) -> str:
    """Client input echoed in an error, cut to a length fit for a message (a 2 MB model name is not
    sent back whole)."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


class LlmurError(Exception):
    """An error a client will see: HTTP status, OpenAI error type, message, offending param, code.

    `code` defaults to the status as a string, as LiteLLM sends it. `headers` are added to the
    response (Retry-After, x-ratelimit-*). Messages never contain key material. `retryable` says
    whether another deployment may be tried (an upstream's 429/5xx/timeout); `entity` is the
    budget or limit holder a refusal is about (its name is filled in before the client sees it).
    """

    def __init__(self, status: int, type: str, message: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None, *,
                 retryable: bool = False, entity: Any = None):
        super().__init__(message)
        self.status, self.type, self.message, self.param = status, type, message, param
        self.code = code if code is not None else str(status)
        self.headers = headers or {}
        self.retryable, self.entity = retryable, entity

    def openai_body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict:
        return {"type": "error", "error": {"type": ANTHROPIC_TYPES.get(self.status, "api_error"),
                                           "message": self.message}}
