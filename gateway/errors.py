"""The one domain error of the request path, rendered in the OpenAI (or Anthropic) error shape."""
from __future__ import annotations


class LlmurError(Exception):
    """An error a client will see: HTTP status, OpenAI error type, message, offending param, code.

    `code` defaults to the status as a string, as LiteLLM sends it. `headers` are added to the
    response (Retry-After, x-ratelimit-*). Messages never contain key material.
    """

    def __init__(self, status: int, type: str, message: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.param = status, type, message, param
        self.code = code if code is not None else str(status)
        self.headers = headers or {}

    def openai_body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict:
        kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                504: "timeout_error"}.get(self.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}
