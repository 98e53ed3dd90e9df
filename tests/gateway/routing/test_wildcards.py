"""Wildcard model groups and allow-lists (gateway.routing.wildcards), client fallback dicts and the
x-litellm-timeout cap: the rules, on plain values."""
from __future__ import annotations

import pickle

import pytest

from gateway.registry import Deployment, Registry
from gateway.routing import fallbacks, litellm_headers, wildcards
from llmur.core.errors import LlmurError


def _dep(group: str, model: str, **fields) -> Deployment:
    provider, _, upstream = model.partition("/")
    return Deployment(id=f"id-{group}", model_name=group, provider=provider, model=upstream,
                      litellm_params={"model": model}, **fields)


def test_most_specific_pattern_wins_and_the_upstream_model_is_filled_in():
    registry = Registry(groups={"*": (_dep("*", "openai/*"),), "groq/*": (_dep("groq/*", "openai/groq/*"),),
                                "gpt-4o": (_dep("gpt-4o", "openai/gpt-4o"),)})
    (exact,) = registry.group("gpt-4o")
    assert exact.wildcard == "" and exact.model == "gpt-4o"
    (groq,) = registry.group("groq/llama-3.1-8b")
    assert (groq.id, groq.wildcard, groq.model) == ("id-groq/*", "groq/*", "groq/llama-3.1-8b")
    assert groq.litellm_params["model"] == "openai/groq/llama-3.1-8b" and groq.model_name == "groq/llama-3.1-8b"
    (anything,) = registry.group("gpt-3.5-turbo-0125")
    assert (anything.wildcard, anything.model) == ("*", "gpt-3.5-turbo-0125")


def test_no_pattern_means_no_group():
    assert Registry(groups={"a": (_dep("a", "openai/a"),)}).group("b") == ()


def test_several_stars_are_filled_in_order():
    parts = wildcards.match("fo::*:static::*", "fo::hi:static::there")
    assert parts == ("hi", "there")
    (dep,) = wildcards.expand((_dep("fo", "openai/fo::*:static::*"),), "fo::*:static::*", "fo::hi:static::there")
    assert dep.model == "fo::hi:static::there"


def test_allow_list_patterns_allow_what_they_match_in_every_list():
    allowed = wildcards.allow_list([["good-model", "anthropic/*"]])
    assert "anthropic/claude-3-5-haiku" in allowed and "good-model" in allowed
    assert "groq/claude-3-5-haiku" not in allowed and "bedrock/anthropic.claude" not in allowed
    both = wildcards.allow_list([["anthropic/claude-x", "gpt-4o"], ["anthropic/*"]])
    assert "anthropic/claude-x" in both and "gpt-4o" not in both and "anthropic/other" not in both
    plain = wildcards.allow_list([["a", "b"], ["b", "c"]])
    assert type(plain) is frozenset and plain == {"b"}


def test_allow_list_survives_the_key_snapshot_pickle():
    from gateway.auth import _load_snapshot

    allowed = wildcards.allow_list([["anthropic/*"]])
    loaded = _load_snapshot(pickle.dumps(allowed))
    assert "anthropic/x" in loaded and "openai/x" not in loaded


def test_client_fallback_dicts_become_names_and_overrides():
    body = {"fallbacks": [{"model": "gpt-instruct", "messages": [{"role": "assistant", "content": "custom"}]},
                          "plain"], "mock_testing_fallbacks": True}
    options = fallbacks.pop_request_options(body)
    assert body == {}
    assert options["fallbacks"] == {"": ["gpt-instruct", "plain"]}
    assert options["fallback_overrides"] == {"gpt-instruct": {"messages": [{"role": "assistant", "content": "custom"}]}}
    assert options["mock_testing_fallbacks"] is True
    # The config form still reads as before.
    assert fallbacks.pop_request_options({"fallbacks": [{"gpt-4o": ["b"]}]})["fallbacks"] == {"gpt-4o": ["b"]}


@pytest.mark.parametrize("field", ["api_base", "api_key", "base_url", "extra_headers"])
def test_a_client_fallback_may_not_carry_credentials_or_an_upstream(field):
    with pytest.raises(LlmurError) as refused:
        fallbacks.pop_request_options({"fallbacks": [{"model": "m", field: "http://169.254.169.254"}]})
    assert refused.value.status == 400 and field in refused.value.message


def test_client_timeout_lowers_but_never_raises_the_deployments():
    dep = Deployment(id="d", model_name="m", provider="openai", model="m", timeout=1.0, stream_timeout=0.5)
    lowered = litellm_headers.with_client_timeout(dep, 0.2)
    assert (lowered.timeout, lowered.stream_timeout) == (0.2, 0.2)
    assert litellm_headers.with_client_timeout(dep, 30.0) is dep
    assert litellm_headers.client_timeout_from({"HTTP_X_LITELLM_TIMEOUT": "0.001"}) == 0.001
    for bad in ("", "soon", "-1", "nan", "inf"):
        assert litellm_headers.client_timeout_from({"HTTP_X_LITELLM_TIMEOUT": bad}) is None
