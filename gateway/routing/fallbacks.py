"""Fallback model groups: router_settings' fallbacks, context_window_fallbacks and
content_policy_fallbacks, and the per-request `fallbacks` LiteLLM accepts in the body.

The config form is LiteLLM's list of one-key mappings, `[{"gpt-4o": ["gpt-4o-mini", "claude"]}]`,
with `"*"` as the fallback of every group. A request may send `fallbacks` either as a plain list of
model names (for the model it asked for) or in the config form; it is stripped before the body
goes upstream.
"""
from __future__ import annotations

from typing import Any

from llmur.core.errors import LlmurError

KINDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
# Body fields the router consumes; none of them may reach the provider.
ROUTER_BODY_FIELDS = (*KINDS, "num_retries")

_CONTEXT_CODES = frozenset({"context_length_exceeded", "context_window_exceeded", "string_above_max_length"})
_CONTEXT_PHRASES = ("context length", "context window", "maximum context", "too many tokens", "prompt is too long")
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter", "content_filtered"})
_POLICY_PHRASES = ("content management policy", "content policy", "content_filter", "safety system")


def error_kind(error: LlmurError) -> str:
    """Which fallback list applies to this error: one of KINDS."""
    if error.status == 400:
        code, text = str(error.code or "").lower(), error.message.lower()
        if code in _CONTEXT_CODES or any(p in text for p in _CONTEXT_PHRASES):
            return "context_window_fallbacks"
        if code in _POLICY_CODES or any(p in text for p in _POLICY_PHRASES):
            return "content_policy_fallbacks"
    return "fallbacks"


def parse_fallback_map(value: Any, *, where: str) -> dict[str, list[str]]:
    """LiteLLM's `[{model: [fallback, ...]}, ...]` as a dict; a plain list of names maps under `where`."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise _bad(where, "expected a list of model names or of {model: [fallback models]} mappings")
    result: dict[str, list[str]] = {}
    for item in value:
        if isinstance(item, str):
            result.setdefault("", []).append(item)
        elif isinstance(item, dict):
            for model, targets in item.items():
                if isinstance(targets, str):
                    targets = [targets]
                if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                    raise _bad(where, f"fallbacks of {model!r} must be a list of model names")
                result.setdefault(str(model), []).extend(targets)
        else:
            raise _bad(where, "each entry must be a model name or a {model: [fallback models]} mapping")
    return result


def pop_request_options(body: dict[str, Any]) -> dict[str, Any]:
    """Take the router's per-request fields out of the body (validated) before it goes upstream."""
    options: dict[str, Any] = {}
    for kind in KINDS:
        if kind in body:
            options[kind] = parse_fallback_map(body.pop(kind), where=kind)
    if "num_retries" in body:
        value = body.pop("num_retries")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
            raise _bad("num_retries", "expected an integer from 0 to 10")
        options["num_retries"] = value
    return options


def request_options(ctx: Any) -> dict[str, Any]:
    """The request's router options, taken out of ctx.body once (validated) and kept on ctx.

    The response cache step calls it too, so a malformed field is a 400 even when a cached answer exists.
    """
    options = ctx.metadata.get("router_options")
    if options is None:
        options = ctx.metadata["router_options"] = pop_request_options(ctx.body)
    return options


def fallback_models(kind: str, model: str, *, configured: dict[str, list[str]],
                    requested: dict[str, list[str]] | None) -> list[str]:
    """The fallback groups to try, in order, when `model` failed with an error of `kind`.

    The request's own list, when it sent one (even an empty one), replaces the configured one.
    """
    source = requested if requested is not None else configured
    targets = source.get(model) or source.get("") or source.get("*") or []
    return [t for t in dict.fromkeys(targets) if t != model]


def _bad(param: str, problem: str) -> LlmurError:
    return LlmurError(400, "invalid_request_error", f"Invalid '{param}': {problem}.", param=param)
