"""Request bodies of the /v1 API: the few checks the gateway needs, and their OpenAPI description.

The body is parsed once with orjson and only the fields the gateway itself relies on are checked
(type and presence), so a large conversation is not re-validated field by field on every request;
the upstream validates the rest. Each failure is a 400 whose message names the field.
"""
from __future__ import annotations

from typing import Any

import orjson
from ninja import Schema

from llmur.core.errors import LlmurError, shown

# Only operators configure upstreams: a client may never redirect a call or supply provider keys.
FORBIDDEN_FIELDS = ("api_base", "base_url", "api_key", "api_version", "azure_ad_token", "custom_llm_provider",
                    "aws_access_key_id", "aws_secret_access_key", "vertex_credentials", "extra_headers")
# LiteLLM-proxy parameters read by the gateway (router, cache), never sent upstream.
PROXY_ONLY_FIELDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "cache", "num_retries",
                     "mock_response", "tags", "mock_testing_fallbacks", "mock_testing_rate_limit_error",
                     "mock_timeout", "memory")


def invalid(message: str, param: str | None = None) -> LlmurError:
    return LlmurError(400, "invalid_request_error", message, param=param)


def parse_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise invalid("Request body is empty: send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"Request body is not valid JSON ({exc.args[0] if exc.args else 'parse error'}).") from None
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    forbidden = _forbidden_field(body, raw)
    if forbidden is not None:
        _, path = forbidden
        raise invalid(f"'{shown(path)}' cannot be set by clients: upstreams and their credentials are configured by "
                      "the operator.", path)
    return body


# JSON Schemas a client sends for tools or structured output may well describe a property called
# api_key; they describe the model's output, not the gateway's upstream, so they are not searched.
_SCHEMA_HOLDERS = frozenset({"parameters", "input_schema", "schema"})
_FORBIDDEN_BYTES = tuple(name.encode() for name in FORBIDDEN_FIELDS)


def _forbidden_field(body: dict[str, Any], raw: bytes) -> tuple[str, str] | None:
    """The first operator-only field anywhere in the body (extra_body, metadata, nested objects), or None.

    LiteLLM-style clients nest upstream settings (extra_body, litellm_params, metadata); any of them,
    at any depth, could point a call elsewhere. The walk runs only when a forbidden name (or a JSON
    escape that could spell one) occurs in the raw bytes, so ordinary bodies cost one scan.
    """
    for name in FORBIDDEN_FIELDS:
        if name in body:
            return name, name
    if b"\\u" not in raw and not any(name in raw for name in _FORBIDDEN_BYTES):
        return None
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{key}" if path else str(key)
                if key in FORBIDDEN_FIELDS:
                    return key, where
                if key in _SCHEMA_HOLDERS and isinstance(value, dict):
                    continue
                if isinstance(value, (dict, list)):
                    stack.append((value, where))
        else:
            for index, value in enumerate(node):
                if isinstance(value, (dict, list)):
                    stack.append((value, f"{path}[{index}]"))
    return None


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("'model' is required and must be a non-empty string.", "model")
    return model


def _optional(body: dict[str, Any], name: str, types: tuple[type, ...], expected: str) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
        raise invalid(f"'{name}' must be {expected}.", name)


def _common(body: dict[str, Any]) -> None:
    _optional(body, "stream", (bool,), "a boolean")
    _optional(body, "stream_options", (dict,), "an object")
    _optional(body, "max_tokens", (int,), "an integer")
    _optional(body, "max_completion_tokens", (int,), "an integer")
    _optional(body, "temperature", (int, float), "a number")
    _optional(body, "top_p", (int, float), "a number")
    _optional(body, "user", (str,), "a string")
    _optional(body, "metadata", (dict,), "an object")
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(name), int) and body[name] < 1:
            raise invalid(f"'{name}' must be at least 1.", name)


def _messages(body: dict[str, Any], *, roles: tuple[str, ...]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' is required and must be a non-empty array.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"'messages[{index}]' must be an object.", f"messages[{index}]")
        role = message.get("role")
        if role not in roles:
            raise invalid(f"'messages[{index}].role' must be one of {', '.join(roles)}.", f"messages[{index}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise invalid(f"'messages[{index}].content' must be a string or an array of content parts.",
                          f"messages[{index}].content")


def validate_chat(body: dict[str, Any]) -> str:
    model = _model(body)
    _messages(body, roles=("system", "developer", "user", "assistant", "tool", "function"))
    _common(body)
    _optional(body, "tools", (list,), "an array")
    return model


def validate_completion(body: dict[str, Any]) -> str:
    model = _model(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, (str, list)) or (isinstance(prompt, list) and not prompt):
        raise invalid("'prompt' is required and must be a string or a non-empty array.", "prompt")
    _common(body)
    return model


def validate_embedding(body: dict[str, Any]) -> str:
    model = _model(body)
    value = body.get("input")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value) or value == "":
        raise invalid("'input' is required and must be a non-empty string or array.", "input")
    return model


def validate_messages(body: dict[str, Any]) -> str:
    model = _model(body)
    _messages(body, roles=("user", "assistant"))
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("'max_tokens' is required and must be a positive integer.", "max_tokens")
    _common(body)
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise invalid("'system' must be a string or an array of text blocks.", "system")
    return model


# --------------------------------------------------------------------------- OpenAPI description only

class ChatCompletionIn(Schema):
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    tools: list[dict[str, Any]] | None = None
    user: str | None = None


class CompletionIn(Schema):
    model: str
    prompt: str | list[str]
    stream: bool = False
    max_tokens: int | None = None


class EmbeddingIn(Schema):
    model: str
    input: str | list[str] | list[int] | list[list[int]]


class MessagesIn(Schema):
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None


def openapi_body(schema: type[Schema]) -> dict[str, Any]:
    """Describe a body in /docs without letting ninja validate it on every request."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema.model_json_schema()}}}}
