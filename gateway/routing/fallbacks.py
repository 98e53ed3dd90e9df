"""Fallback model groups: router_settings' fallbacks, context_window_fallbacks and
content_policy_fallbacks, and the per-request `fallbacks` LiteLLM accepts in the body.

The config form is LiteLLM's list of one-key mappings, `[{"gpt-4o": ["gpt-4o-mini", "claude"]}]`,
with `"*"` as the fallback of every group. A request may send `fallbacks` as a plain list of
model names (for the model it asked for), in the config form, or as LiteLLM's client-side dicts
`[{"model": "gpt-instruct", "messages": [...]}]`: the named group is tried with those request fields
replacing the original ones (only request fields from FALLBACK_OVERRIDABLE; never credentials or an
upstream address). Every form is stripped before the body goes upstream, and a fallback the key
may not use is never tried.

LiteLLM's test switches are honoured too, for the request that sends them and without touching
cooldowns (so a client cannot cool a shared deployment down): `mock_testing_fallbacks` fails the
requested group at once, `mock_testing_rate_limit_error` makes its first attempt a 429 (so it is
retried), `mock_timeout` makes every attempt time out. None of them reaches a provider.
"""
from __future__ import annotations

from typing import Any

from llmur.core.errors import LlmurError, shown

KINDS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
MOCKS = ("mock_testing_fallbacks", "mock_testing_rate_limit_error", "mock_timeout")
# Body fields the router consumes; none of them may reach the provider.
ROUTER_BODY_FIELDS = (*KINDS, "num_retries", *MOCKS)
# What a client-side fallback dict may replace in the request.
FALLBACK_OVERRIDABLE = frozenset({
    "messages", "prompt", "input", "system", "temperature", "top_p", "top_k", "max_tokens",
    "max_completion_tokens", "stop", "n", "presence_penalty", "frequency_penalty", "seed", "logit_bias",
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "user",
})

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


def _client_fallbacks(value: Any, where: str, overrides: dict[str, dict[str, Any]]) -> Any:
    """LiteLLM's `{"model": name, <request fields>}` entries as plain names, their fields kept in overrides."""
    if not isinstance(value, list):
        return value
    plain: list[Any] = []
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("model"), str):
            model = item["model"]
            extra = {k: v for k, v in item.items() if k != "model"}
            refused = sorted(set(extra) - FALLBACK_OVERRIDABLE)
            if refused:
                raise _bad(where, f"a fallback may replace only request fields such as messages or temperature, "
                                  f"not {shown(', '.join(refused))}")
            overrides[model] = extra
            plain.append(model)
        else:
            plain.append(item)
    return plain


def pop_request_options(body: dict[str, Any]) -> dict[str, Any]:
    """Take the router's per-request fields out of the body (validated) before it goes upstream."""
    options: dict[str, Any] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        if kind in body:
            options[kind] = parse_fallback_map(_client_fallbacks(body.pop(kind), kind, overrides), where=kind)
    if overrides:
        options["fallback_overrides"] = overrides
    for mock in MOCKS:
        if body.pop(mock, None) is True:
            options[mock] = True
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
    options = ctx.router_options
    if options is None:
        options = ctx.router_options = pop_request_options(ctx.body)
    return options


def fallback_models(kind: str, model: str, *, configured: dict[str, list[str]],
                    requested: dict[str, list[str]] | None) -> list[str]:
    """The fallback groups to try, in order, when `model` failed with an error of `kind`.

    The request's own list, when it sent one (even an empty one), replaces the configured one.
    """
    source = requested if requested is not None else configured
    targets = source.get(model) or source.get("") or source.get("*") or []
    return [t for t in dict.fromkeys(targets) if t != model]


def mock_error(status: int, message: str, *, type_: str = "api_error") -> LlmurError:
    """A failure a LiteLLM test switch asked for: retried and fallen back like a real one, never cooled down."""
    error = LlmurError(status, type_, message, code=str(status))
    error.retryable = True
    error.mock = True
    return error


def _bad(param: str, problem: str) -> LlmurError:
    return LlmurError(400, "invalid_request_error", f"Invalid '{param}': {problem}.", param=param)
