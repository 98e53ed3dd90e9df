"""The fake provider on its own: every route and every behaviour it documents, through real clients."""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time

import anthropic
import openai
import pytest

from fakeprovider.behaviour import Behaviour, behaviour_for
from tests.conftest import ROOT, start_fake_provider

HELLO = [{"role": "user", "content": "hello fake world"}]   # 16 characters: 4 prompt tokens


@pytest.fixture(scope="module")
def fake():
    provider = start_fake_provider()
    yield provider
    provider.process.terminate()
    provider.process.wait(timeout=10)


@pytest.fixture
def stats(fake):
    fake.reset()
    return fake.stats


def post(fake, path: str, body, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=timeout)
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection.request("POST", path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


@pytest.mark.parametrize("model,expected", [
    ("mock-gpt", Behaviour()), ("gpt-4o", Behaviour()), ("mock-500", Behaviour(status=500)),
    ("fake-429", Behaviour(status=429)), ("x-400", Behaviour(status=400)), ("mock-hang", Behaviour(hang=True)),
    ("mock-cut", Behaviour(cut=True)), ("mock-slow-250", Behaviour(first_byte_delay_s=0.25)),
    ("mock-drip-50", Behaviour(chunk_delay_s=0.05)), ("summary-echo", Behaviour(echo=True)),
    ("500", Behaviour()), ("gpt-4o-2024-08-06", Behaviour()), ("slow", Behaviour()),
])
def test_the_model_name_picks_the_behaviour(model, expected):
    assert behaviour_for(model) == expected


def test_chat_completion_through_the_openai_sdk(fake, stats):
    client = openai.OpenAI(base_url=f"{fake.url}/v1", api_key="sk-upstream-1", max_retries=0)
    answer = client.chat.completions.create(model="mock-gpt", messages=HELLO, max_tokens=3)
    assert answer.choices[0].message.content == "lorem lorem lorem "
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 3)
    second = client.chat.completions.create(model="mock-gpt", messages=HELLO)
    assert second.usage.completion_tokens == 16   # --tokens default
    assert answer.id != second.id   # gateways look spend up by the completion id
    counters = stats()
    assert counters["requests"] == 2 and counters["by_model"] == {"mock-gpt": 2}
    assert counters["by_path"] == {"/v1/chat/completions": 2}
    assert counters["credentials_seen"] == ["Bearer sk-upstream-1"]
    assert counters["recent"][-1]["body"]["messages"] == HELLO


def test_streamed_chat_with_usage_through_the_openai_sdk(fake, stats):
    client = openai.OpenAI(base_url=f"{fake.url}/v1", api_key="k", max_retries=0)
    chunks = list(client.chat.completions.create(model="mock-gpt", messages=HELLO, max_tokens=4, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "lorem " * 4
    assert chunks[-1].usage.completion_tokens == 4 and chunks[-1].usage.prompt_tokens == 4
    assert stats()["streams_completed"] == 1


def test_text_completions_embeddings_and_models(fake):
    client = openai.OpenAI(base_url=f"{fake.url}/v1", api_key="k", max_retries=0)
    completion = client.completions.create(model="mock-gpt", prompt="abcdefgh", max_tokens=2)
    assert completion.choices[0].text == "lorem lorem " and completion.usage.prompt_tokens == 2
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="mock-gpt", prompt="abcd", max_tokens=2, stream=True))
    assert streamed == "lorem lorem "
    embeddings = client.embeddings.create(model="mock-embed", input=["one", "two"])
    assert [len(item.embedding) for item in embeddings.data] == [8, 8]
    assert [model.id for model in client.models.list()] == ["fake-gpt"]


def test_anthropic_messages_json_and_stream_through_the_sdk(fake):
    client = anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-1", max_retries=0)
    message = client.messages.create(model="claude-x", max_tokens=2, messages=HELLO)
    assert message.content[0].text == "lorem lorem " and message.usage.output_tokens == 2
    with client.messages.stream(model="claude-x", max_tokens=3, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "lorem " * 3 and final.usage.output_tokens == 3 and final.usage.input_tokens == 4


def test_ollama_native_chat_generate_and_embed(fake):
    status, _, data = post(fake, "/api/chat", {"model": "llama", "messages": HELLO, "stream": False,
                                               "options": {"num_predict": 2}})
    assert status == 200 and json.loads(data)["message"]["content"] == "lorem lorem "
    status, headers, data = post(fake, "/api/generate", {"model": "llama", "prompt": "hi", "options": {"num_predict": 2}})
    lines = [json.loads(line) for line in data.splitlines()]
    assert headers["content-type"] == "application/x-ndjson"
    assert [line["response"] for line in lines] == ["lorem ", "lorem ", ""] and lines[-1]["done"] is True
    assert lines[-1]["eval_count"] == 2
    status, _, data = post(fake, "/api/embed", {"model": "llama", "input": ["a", "b", "c"]})
    assert len(json.loads(data)["embeddings"]) == 3


def test_azure_deployment_paths_answer(fake, stats):
    status, _, data = post(fake, "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
                           {"messages": HELLO, "max_tokens": 1}, {"api-key": "azure-secret"})
    assert status == 200 and json.loads(data)["choices"][0]["message"]["content"] == "lorem "
    assert stats()["credentials_seen"] == ["azure-secret"]


@pytest.mark.parametrize("model,status,code", [("mock-500", 500, None), ("mock-429", 429, "rate_limit_exceeded"),
                                               ("mock-400", 400, "context_length_exceeded")])
def test_error_models(fake, model, status, code):
    got, headers, data = post(fake, "/v1/chat/completions", {"model": model, "messages": HELLO})
    assert got == status
    assert json.loads(data)["error"]["code"] == code
    assert (headers.get("retry-after") == "1") == (status == 429)


def test_the_openai_sdk_sees_the_error_models_as_their_errors(fake):
    client = openai.OpenAI(base_url=f"{fake.url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="mock-429", messages=HELLO)
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.chat.completions.create(model="mock-400", messages=HELLO)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="mock-500", messages=HELLO)


def test_hang_never_answers(fake):
    with pytest.raises(TimeoutError):
        post(fake, "/v1/chat/completions", {"model": "mock-hang", "messages": HELLO}, timeout=0.5)


def test_cut_stream_sends_three_chunks_then_drops_the_connection(fake, stats):
    client = openai.OpenAI(base_url=f"{fake.url}/v1", api_key="k", max_retries=0)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="mock-cut", messages=HELLO, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["lorem "] * 3
    assert stats()["streams_cut"] == 1
    with pytest.raises((http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError)):
        post(fake, "/v1/chat/completions", {"model": "mock-cut", "messages": HELLO})   # JSON: cut after the head


def test_slow_first_byte_and_drip_between_chunks(fake):
    started = time.monotonic()
    status, _, _ = post(fake, "/v1/chat/completions", {"model": "mock-slow-300", "messages": HELLO})
    assert status == 200 and time.monotonic() - started >= 0.3
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(
        {"model": "mock-drip-100", "messages": HELLO, "stream": True, "max_tokens": 3}))
    response = connection.getresponse()
    arrivals = []
    while (line := response.fp.readline()) and not line.startswith(b"data: [DONE]"):
        if line.startswith(b"data: {"):
            arrivals.append(time.monotonic())
    connection.close()
    assert len(arrivals) == 4   # three words and the finish event
    assert all(later - earlier >= 0.09 for earlier, later in zip(arrivals, arrivals[1:3]))


def test_echo_answers_with_what_was_sent(fake):
    client = anthropic.Anthropic(base_url=fake.url, api_key="k", max_retries=0)
    message = client.messages.create(model="summary-echo", max_tokens=100, system="be brief", messages=HELLO)
    assert message.content[0].text == "be brief\nhello fake world"
    status, _, data = post(fake, "/v1/chat/completions", {"model": "x-echo", "messages": [
        {"role": "system", "content": "remember this"}, {"role": "user", "content": [{"type": "text", "text": "q"}]}]})
    assert json.loads(data)["choices"][0]["message"]["content"] == "remember this\nq"


def test_a_client_that_leaves_mid_stream_is_counted(fake, stats):
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(
        {"model": "mock-drip-50", "messages": HELLO, "stream": True, "max_tokens": 200}))
    response = connection.getresponse()
    response.fp.readline()
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    deadline = time.monotonic() + 10
    while stats()["streams_aborted"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats()["streams_aborted"] == 1 and stats()["streams_completed"] == 0
    assert stats()["streams_by_model"] == {"mock-drip-50": {"completed": 0, "aborted": 1, "cut": 0}}


def test_bad_requests(fake):
    status, _, data = post(fake, "/v1/chat/completions", b"{not json")
    assert status == 400 and "JSON object" in json.loads(data)["error"]["message"]
    status, _, _ = post(fake, "/v1/nothing-here", {"model": "m"})
    assert status == 404


def test_chunked_request_bodies_and_keep_alive(fake, stats):
    body = json.dumps({"model": "mock-gpt", "messages": HELLO, "max_tokens": 1}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(request * 2)   # two requests pipelined on one connection
        received = b""
        while received.count(b'"object":"chat.completion"') < 2:
            received += sock.recv(65536)
    assert received.count(b"HTTP/1.1 200 OK") == 2
    assert stats()["requests"] == 2


def test_cli_rejects_bad_arguments_in_one_line():
    result = subprocess.run([sys.executable, "-m", "fakeprovider", "--port", "70000"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "out of range" in result.stderr and "Traceback" not in result.stderr
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        result = subprocess.run([sys.executable, "-m", "fakeprovider", "--port", str(taken.getsockname()[1])],
                                cwd=ROOT, capture_output=True, text=True, timeout=30)
    finally:
        taken.close()
    assert result.returncode == 1 and "cannot listen" in result.stderr and "Traceback" not in result.stderr
