"""Unit tests: OpenAI chat ⇄ Anthropic messages (requests, answers, stream events) and error mapping."""
from __future__ import annotations

import asyncio
import json

import orjson

from gateway.providers.anthropic_chat import (
    anthropic_stream_to_openai,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)
from gateway.providers.anthropic_messages import (
    anthropic_to_openai_request,
    openai_stream_to_anthropic,
    openai_to_anthropic_response,
)
from gateway.providers.base import Chunk, upstream_error
from gateway.registry import Deployment
from llmur.core.errors import LlmurError

CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER_TOOL = {"type": "function", "function": {"name": "weather", "description": "Weather for a city",
                                                 "parameters": CITY_SCHEMA}}


def _collect(agen):
    async def run():
        return [item async for item in agen]
    return asyncio.run(run())


async def _aiter(items):
    for item in items:
        yield item


# --------------------------------------------------------------------------- OpenAI → Anthropic requests

def test_system_prompts_move_to_the_system_field():
    out = openai_to_anthropic_request({"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": "Hi"}]}, "claude-x")
    assert out["system"] == "Be brief.\n\nUse metric units."
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert out["model"] == "claude-x" and out["max_tokens"] == 4096


def test_multi_part_content_becomes_blocks():
    out = openai_to_anthropic_request({"max_tokens": 10, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}, "m")
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}]
    assert out["max_tokens"] == 10


def test_tool_definitions_calls_and_results():
    out = openai_to_anthropic_request({"tools": [WEATHER_TOOL], "tool_choice": "required", "parallel_tool_calls": False,
                                       "stop": "END", "messages": [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "18 C"}]}, "m")
    assert out["tools"] == [{"name": "weather", "description": "Weather for a city",
                             "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["stop_sequences"] == ["END"]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}]
    # Consecutive tool results merge into one user turn, as Anthropic requires alternating roles.
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "-3 C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "18 C"}]


def test_named_tool_choice():
    out = openai_to_anthropic_request({"tools": [WEATHER_TOOL], "messages": [{"role": "user", "content": "x"}],
                                       "tool_choice": {"type": "function", "function": {"name": "weather"}}}, "m")
    assert out["tool_choice"] == {"type": "tool", "name": "weather"}


# --------------------------------------------------------------------------- Anthropic → OpenAI answers

def test_anthropic_answer_with_text_and_tool_use():
    out = anthropic_to_openai_response({
        "id": "msg_1", "model": "claude-x", "stop_reason": "tool_use",
        "content": [{"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}],
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}}, "group")
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"] == [{"id": "toolu_1", "type": "function",
                                                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                            "prompt_tokens_details": {"cached_tokens": 2}}


def test_stop_reasons_map_both_ways():
    for anthropic_reason, openai_reason in (("end_turn", "stop"), ("max_tokens", "length"),
                                            ("stop_sequence", "stop"), ("tool_use", "tool_calls")):
        answer = anthropic_to_openai_response({"content": [], "stop_reason": anthropic_reason}, "m")
        assert answer["choices"][0]["finish_reason"] == openai_reason
    for openai_reason, anthropic_reason in (("stop", "end_turn"), ("length", "max_tokens"),
                                            ("tool_calls", "tool_use")):
        answer = openai_to_anthropic_response({"choices": [{"message": {"content": "x"},
                                                            "finish_reason": openai_reason}]}, "m")
        assert answer["stop_reason"] == anthropic_reason


def test_anthropic_stream_becomes_openai_chunks_with_tool_calls_and_usage():
    events = [
        {"type": "message_start", "message": {"model": "claude-x", "usage": {"input_tokens": 7, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me check"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_9",
                                                                      "name": "weather", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ' "Oslo"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
        {"type": "message_stop"},
    ]
    chunks = [c.data for c in _collect(anthropic_stream_to_openai(_aiter([Chunk(data=e) for e in events]), "m"))]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Let me check"}
    assert deltas[2]["tool_calls"][0] == {"index": 0, "id": "toolu_9", "type": "function",
                                          "function": {"name": "weather", "arguments": ""}}
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5]) == '{"city": "Oslo"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 7
    assert chunks[-1]["usage"]["completion_tokens"] == 12


# --------------------------------------------------------------------------- Anthropic → OpenAI requests

def test_anthropic_request_with_system_blocks_images_tools_and_results():
    out = anthropic_to_openai_request({
        "model": "gpt", "max_tokens": 50, "stop_sequences": ["Z"], "metadata": {"user_id": "u1"},
        "system": [{"type": "text", "text": "Be brief."}],
        "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "weather"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look:"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                                                      "data": "AAA"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Calling."},
                                              {"type": "tool_use", "id": "t1", "name": "weather", "input": {"c": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "sunny"}]},
                                         {"type": "text", "text": "And tomorrow?"}]}]})
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][1]["content"] == [{"type": "text", "text": "Look:"},
                                             {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA"}}]
    assert out["messages"][2] == {"role": "assistant", "content": "Calling.", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": '{"c": 1}'}}]}
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "sunny"}
    assert out["messages"][4] == {"role": "user", "content": "And tomorrow?"}
    assert out["tools"][0]["function"]["parameters"] == {"type": "object"}
    assert out["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert out["stop"] == ["Z"] and out["user"] == "u1" and out["max_tokens"] == 50


def test_openai_answer_with_tool_calls_becomes_anthropic_message():
    out = openai_to_anthropic_response({"id": "c1", "choices": [{"finish_reason": "tool_calls", "message": {
        "content": None,
        "tool_calls": [{"id": "call_1", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 6}}, "group")
    assert out["content"] == [{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}]
    assert out["stop_reason"] == "tool_use"
    assert out["usage"] == {"input_tokens": 4, "output_tokens": 6}
    assert out["model"] == "group" and out["type"] == "message"


def _events(raw: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for frame in raw:
        name_line, data_line = frame.decode().strip().split("\n")
        out.append((name_line[len("event: "):], json.loads(data_line[len("data: "):])))
    return out


def test_openai_stream_becomes_the_anthropic_event_sequence():
    def chunk(delta, finish=None, usage=None):
        data = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return Chunk(data=data)

    chunks = [chunk({"role": "assistant", "content": "Hel"}), chunk({"content": "lo"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "weather", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Oslo"}'}}]}),
              chunk({}, "tool_calls"),
              Chunk(data={"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}})]
    events = _events(_collect(openai_stream_to_anthropic(_aiter(chunks), "group")))
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert events[5][1] == {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "call_1", "name": "weather", "input": {}}}
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"city":"Oslo"}'}
    assert events[8][1]["delta"]["stop_reason"] == "tool_use"
    assert events[8][1]["usage"] == {"input_tokens": 3, "output_tokens": 9}


# --------------------------------------------------------------------------- error mapping

DEP = Deployment(id="dep-1", model_name="g", provider="openai", model="m", api_key="sk-secret-upstream-key-1234")


def test_upstream_client_error_passes_through():
    error = upstream_error(DEP, 400, orjson.dumps({"error": {"message": "too long", "type": "invalid_request_error",
                                                             "code": "context_length_exceeded", "param": "messages"}}),
                           {}, DEP.api_key)
    assert (error.status, error.code, error.message, error.param) == (400, "context_length_exceeded", "too long",
                                                                      "messages")


def test_upstream_server_error_is_502_and_retryable():
    error = upstream_error(DEP, 503, b"<html>overloaded</html>", {}, DEP.api_key)
    assert error.status == 502 and error.type == "api_error" and error.retryable
    assert "HTTP 503" in error.message


def test_upstream_auth_failure_is_502_and_hides_the_key():
    body = orjson.dumps({"error": {"message": "Incorrect API key provided: sk-secret-upstream-key-1234"}})
    error = upstream_error(DEP, 401, body, {}, DEP.api_key)
    assert isinstance(error, LlmurError) and error.status == 502
    assert "sk-secret" not in error.message


def test_upstream_message_never_contains_the_key():
    body = orjson.dumps({"error": {"message": "bad request for key sk-secret-upstream-key-1234", "type": "x"}})
    error = upstream_error(DEP, 422, body, {}, DEP.api_key)
    assert "sk-secret-upstream-key-1234" not in error.message and error.status == 422


def test_anthropic_error_shape_is_read():
    body = orjson.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    error = upstream_error(DEP, 529, body, {"retry-after": "3"}, None)
    assert error.status == 502 and "Overloaded" in error.message and error.retryable


def test_upstream_429_keeps_retry_after():
    error = upstream_error(DEP, 429, b'{"error": {"message": "slow down"}}', {"retry-after": "7"}, None)
    assert error.status == 429 and error.headers == {"retry-after": "7"}
