"""Unit tests of the Azure and Ollama adapters with payloads in their recorded shapes.

The fake provider speaks only the OpenAI and Anthropic wire formats, so these adapters are
tested here at the request-building and answer-parsing level.
"""
from __future__ import annotations

import asyncio

import orjson

from gateway.providers.azure import PROVIDER as AZURE
from gateway.providers.ollama import PROVIDER as OLLAMA
from gateway.providers.openai import PROVIDER as OPENAI
from gateway.registry import deployment_from_params
from gateway.streaming import ndjson_lines, sse_events


def _dep(model: str, **params):
    return deployment_from_params(deployment_id="d", model_name="group", params={"model": model, **params},
                                  model_info={}, source="config")


def test_provider_prefixes_and_timeouts():
    assert _dep("azure/gpt4o-eu").provider == "azure"
    assert _dep("gpt-4o").provider == "openai" and _dep("gpt-4o").model == "gpt-4o"
    assert _dep("hosted_vllm/meta/llama").model == "meta/llama"
    dep = _dep("openai/x", timeout=5)
    assert (dep.timeout, dep.stream_timeout) == (5.0, 5.0)
    assert "api_key" not in _dep("openai/x", api_key="sk-1").litellm_params


def test_azure_request_uses_deployment_url_api_version_and_api_key():
    dep = _dep("azure/gpt4o-eu", api_base="https://eu.openai.azure.com/", api_version="2024-06-01", api_key="k")
    request = AZURE.build_request(dep, "chat", {"model": "group", "messages": [], "stream": True}, api_key="az-key",
                                  client_headers={})
    assert request.url == ("https://eu.openai.azure.com/openai/deployments/gpt4o-eu/chat/completions"
                           "?api-version=2024-06-01")
    assert request.headers["api-key"] == "az-key" and "authorization" not in request.headers
    body = orjson.loads(request.body)
    assert body["model"] == "gpt4o-eu" and "stream_options" not in body
    embed = AZURE.build_request(dep, "embedding", {"model": "group", "input": "x"}, api_key=None, client_headers={})
    assert embed.url.startswith("https://eu.openai.azure.com/openai/deployments/gpt4o-eu/embeddings?")


def test_openai_request_asks_streams_for_usage_and_keeps_other_fields():
    dep = _dep("openai/gpt-4o", api_base="http://vllm:8000/v1")
    request = OPENAI.build_request(dep, "chat", {"model": "group", "messages": [], "stream": True, "seed": 3},
                                   api_key=None, client_headers={})
    assert request.url == "http://vllm:8000/v1/chat/completions" and "authorization" not in request.headers
    assert orjson.loads(request.body) == {"model": "gpt-4o", "messages": [], "stream": True, "seed": 3,
                                          "stream_options": {"include_usage": True}}


def test_ollama_chat_request_and_answer():
    dep = _dep("ollama/llama3.2", api_base="http://ollama:11434")
    request = OLLAMA.build_request(dep, "chat", {
        "model": "group", "max_tokens": 20, "temperature": 0.1, "stop": "END",
        "response_format": {"type": "json_object"},
        "messages": [{"role": "system", "content": "Be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                                  {"type": "image_url",
                                                   "image_url": {"url": "data:image/png;base64,QUJD"}}]}]},
        api_key=None, client_headers={})
    assert request.url == "http://ollama:11434/api/chat"
    assert orjson.loads(request.body) == {
        "model": "llama3.2", "stream": False, "format": "json",
        "messages": [{"role": "system", "content": "Be brief"},
                     {"role": "user", "content": "What is it?", "images": ["QUJD"]}],
        "options": {"temperature": 0.1, "num_predict": 20, "stop": ["END"]}}
    recorded = {"model": "llama3.2", "created_at": "2024-07-22T20:33:28Z",
                "message": {"role": "assistant", "content": "A cat."}, "done": True, "done_reason": "stop",
                "total_duration": 4883583458, "prompt_eval_count": 26, "eval_count": 4}
    answer = OLLAMA.parse_response(dep, "chat", orjson.dumps(recorded)).data
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "A cat."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 26, "completion_tokens": 4, "total_tokens": 30}


def test_ollama_tool_calls_become_openai_tool_calls():
    dep = _dep("ollama/llama3.2")
    recorded = {"message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "weather", "arguments": {"city": "Oslo"}}}]}, "done": True, "done_reason": "stop"}
    choice = OLLAMA.parse_response(dep, "chat", orjson.dumps(recorded)).data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city": "Oslo"}'}


def test_ollama_embeddings():
    dep = _dep("ollama/nomic-embed-text")
    request = OLLAMA.build_request(dep, "embedding", {"model": "group", "input": ["a", "b"]}, api_key=None,
                                   client_headers={})
    assert request.url.endswith("/api/embed")
    assert orjson.loads(request.body) == {"model": "nomic-embed-text", "input": ["a", "b"]}
    answer = OLLAMA.parse_response(dep, "embedding", orjson.dumps(
        {"model": "nomic-embed-text", "embeddings": [[0.1, 0.2], [0.3, 0.4]], "prompt_eval_count": 2})).data
    assert [d["embedding"] for d in answer["data"]] == [[0.1, 0.2], [0.3, 0.4]]
    assert answer["usage"]["prompt_tokens"] == 2


async def _chunks(parts):
    for part in parts:
        yield part


def test_ollama_stream_becomes_openai_chunks_with_usage():
    dep = _dep("ollama/llama3.2")
    recorded = (b'{"model":"llama3.2","message":{"role":"assistant","content":"The"},"done":false}\n'
                b'{"model":"llama3.2","message":{"role":"assistant","content":" sky"},"done":false}\n{"model":"lla'
                b'ma3.2","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop",'
                b'"prompt_eval_count":10,"eval_count":2}\n')

    async def run():
        lines = ndjson_lines(_chunks([recorded[:70], recorded[70:150], recorded[150:]]))
        return [c.data async for c in OLLAMA.parse_stream(dep, "chat", lines)]

    chunks = asyncio.run(run())
    assert [c["choices"][0]["delta"].get("content") for c in chunks[:3]] == ["The", " sky", ""]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 12


def test_sse_splitting_across_reads_and_crlf():
    raw = b"event: a\r\ndata: {\"x\":1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n"

    async def run():
        return [e async for e in sse_events(_chunks([raw[:7], raw[7:20], raw[20:]]))]

    events = asyncio.run(run())
    assert [(name, data) for name, data, _ in events] == [("a", b'{"x":1}'), (None, b"[DONE]")]
