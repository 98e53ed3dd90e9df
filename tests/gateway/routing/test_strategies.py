"""Each strategy's choice on given counters, and the fallback/cooldown rules."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from llmur.core.errors import LlmurError
from gateway.registry import Deployment
from gateway.routing import fallbacks
from gateway.routing.cooldowns import is_deployment_failure, retry_after_seconds
from gateway.routing.counters import Counters
from gateway.routing.strategies import CHOOSERS


def dep(name: str, **params) -> Deployment:
    return Deployment(id=name, model_name="group", provider="openai", model="m", **params)


def picks(strategy: str, group, counters=Counters(), n: int = 4000, stream: bool = False) -> Counter:
    rng = random.Random(7)
    return Counter(CHOOSERS[strategy](group, counters, stream=stream, rng=rng).id for _ in range(n))


def test_simple_shuffle_follows_weights():
    counts = picks("simple-shuffle", [dep("a", weight=3), dep("b", weight=1)])
    assert 0.70 < counts["a"] / 4000 < 0.80


def test_simple_shuffle_uses_rpm_when_no_weight():
    counts = picks("simple-shuffle", [dep("a", rpm=100), dep("b", rpm=900)])
    assert 0.05 < counts["a"] / 4000 < 0.15


def test_simple_shuffle_without_hints_is_uniform():
    counts = picks("simple-shuffle", [dep("a"), dep("b")])
    assert 0.45 < counts["a"] / 4000 < 0.55


def test_least_busy_picks_fewest_in_flight():
    counters = Counters(in_flight={"a": 5, "b": 1, "c": 2})
    assert picks("least-busy", [dep("a"), dep("b"), dep("c")], counters, n=50) == {"b": 50}


def test_usage_based_prefers_headroom_and_skips_full_deployments():
    group = [dep("a", rpm=10), dep("b", rpm=100), dep("c", tpm=1000)]
    counters = Counters(rpm={"a": 10, "b": 50, "c": 1}, tpm={"c": 900})
    assert picks("usage-based-routing", group, counters, n=50) == {"b": 50}


def test_usage_based_gives_none_when_every_deployment_is_full():
    group = [dep("a", rpm=1), dep("b", tpm=10)]
    assert CHOOSERS["usage-based-routing"](group, Counters(rpm={"a": 1}, tpm={"b": 10})) is None


def test_latency_based_prefers_faster_and_probes_unmeasured():
    group = [dep("a"), dep("b"), dep("c")]
    measured = Counters(latency={"a": [0.5, 0.4], "b": [0.1, 0.2], "c": [0.3]})
    assert picks("latency-based-routing", group, measured, n=50) == {"b": 50}
    unmeasured = Counters(latency={"a": [0.5], "b": [0.1]})
    assert picks("latency-based-routing", group, unmeasured, n=50) == {"c": 50}


def test_latency_based_uses_time_to_first_token_for_streams():
    group = [dep("a"), dep("b")]
    counters = Counters(latency={"a": [2.0], "b": [0.5]}, ttft={"a": [0.05], "b": [0.4]})
    assert picks("latency-based-routing", group, counters, n=20, stream=True) == {"a": 20}
    assert picks("latency-based-routing", group, counters, n=20) == {"b": 20}


def test_error_kinds():
    context = LlmurError(400, "invalid_request_error", "This model's maximum context length is 8 tokens",
                         code="context_length_exceeded")
    policy = LlmurError(400, "invalid_request_error", "blocked", code="content_policy_violation")
    assert fallbacks.error_kind(context) == "context_window_fallbacks"
    assert fallbacks.error_kind(policy) == "content_policy_fallbacks"
    assert fallbacks.error_kind(LlmurError(502, "api_error", "boom")) == "fallbacks"
    assert is_deployment_failure(LlmurError(429, "rate_limit_error", "slow down"))
    assert is_deployment_failure(LlmurError(504, "timeout", "late"))
    assert not is_deployment_failure(context)


def test_retry_after_header_is_read_when_sane():
    assert retry_after_seconds(LlmurError(429, "r", "m", headers={"retry-after": "1"})) == 1.0
    assert retry_after_seconds(LlmurError(429, "r", "m", headers={"retry-after": "soon"})) is None


def test_request_fallbacks_replace_configured_and_are_stripped():
    body = {"model": "a", "fallbacks": ["b", "c"], "num_retries": 1}
    options = fallbacks.pop_request_options(body)
    assert body == {"model": "a"}
    configured = fallbacks.parse_fallback_map([{"a": ["z"]}, {"*": ["star"]}], where="router_settings.fallbacks")
    requested = options["fallbacks"]
    assert fallbacks.fallback_models("fallbacks", "a", configured=configured, requested=requested) == ["b", "c"]
    assert fallbacks.fallback_models("fallbacks", "a", configured=configured, requested=None) == ["z"]
    assert fallbacks.fallback_models("fallbacks", "q", configured=configured, requested=None) == ["star"]
    assert options["num_retries"] == 1


@pytest.mark.parametrize("field,value", [("fallbacks", "b"), ("fallbacks", [{"a": [1]}]), ("num_retries", "2")])
def test_malformed_request_options_are_a_400_naming_the_field(field, value):
    with pytest.raises(LlmurError) as caught:
        fallbacks.pop_request_options({field: value})
    assert caught.value.status == 400 and caught.value.param == field


def test_router_config_merges_litellm_settings_and_reports_a_malformed_list():
    from llmur.config import LlmurConfig

    from gateway.routing.engine import RouterConfig

    config = LlmurConfig.model_validate({
        "router_settings": {"routing_strategy": "least-busy", "fallbacks": [{"a": ["b"]}], "cooldown_time": 9},
        "litellm_settings": {"fallbacks": [{"a": ["ignored"]}, {"x": ["y"]}], "context_window_fallbacks": "big",
                             "num_retries": 4},
    })
    warnings: list[str] = []
    router = RouterConfig.from_settings(config, warnings)
    assert router.fallbacks["fallbacks"] == {"a": ["b"], "x": ["y"]}     # router_settings wins for "a"
    assert router.fallbacks["context_window_fallbacks"] == {}
    assert router.num_retries == 4 and router.cooldown_time == 9 and router.need == "in_flight"
    assert len(warnings) == 1 and warnings[0].startswith("litellm_settings.context_window_fallbacks:")
