"""The real openai and anthropic SDKs against a real llmur server, in front of the fake provider."""
from __future__ import annotations

import asyncio

import anthropic
import openai
import pytest

from tests.factories import make_key


@pytest.fixture
def key(transactional_db) -> str:
    return make_key(key_alias="sdk tests").plaintext


@pytest.fixture
def client(gateway, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def async_client(gateway, key) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def claude(gateway, key) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


HELLO = [{"role": "user", "content": "Say hello"}]


def test_openai_chat_completion_returns_upstream_answer_and_usage(client):
    raw = client.chat.completions.with_raw_response.create(model="mock-gpt", messages=HELLO, max_tokens=4)
    completion = raw.parse()
    assert completion.choices[0].message.content == "lorem " * 4
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 4
    assert raw.headers["x-llmur-model-deployment"].startswith("cfg-")
    assert raw.headers["x-request-id"]


def test_openai_chat_stream_arrives_in_chunks_and_ends(client):
    stream = client.chat.completions.create(model="mock-gpt", messages=HELLO, max_tokens=5, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "lorem " * 5
    assert len(chunks) == 6  # five content chunks and the finish chunk: no usage chunk unless asked for
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_chat_stream_include_usage_sends_a_final_usage_chunk(client):
    chunks = list(client.chat.completions.create(model="mock-gpt", messages=HELLO, max_tokens=3, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 3


def test_openai_completions_embeddings_and_models(client):
    assert client.completions.create(model="mock-gpt", prompt="Say", max_tokens=2).choices[0].text == "lorem lorem "
    embeddings = client.embeddings.create(model="mock-gpt", input=["one", "two"])
    assert [e.index for e in embeddings.data] == [0, 1] and len(embeddings.data[0].embedding) == 8
    names = {m.id for m in client.models.list()}
    assert {"mock-gpt", "mock-claude"} <= names
    assert client.models.retrieve("mock-gpt").id == "mock-gpt"


def test_openai_completions_stream(client):
    chunks = list(client.completions.create(model="mock-gpt", prompt="Say", max_tokens=3, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "lorem " * 3


def test_openai_async_client_chat_stream_and_not(async_client):
    asyncio.run(_async_calls(async_client))


async def _async_calls(async_client):
    completion = await async_client.chat.completions.create(model="mock-gpt", messages=HELLO, max_tokens=2)
    assert completion.choices[0].message.content == "lorem lorem "
    stream = await async_client.chat.completions.create(model="mock-gpt", messages=HELLO, max_tokens=2, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "lorem lorem "
    embeddings = await async_client.embeddings.create(model="mock-gpt", input="one")
    assert len(embeddings.data) == 1
    assert "mock-gpt" in {m.id async for m in async_client.models.list()}
    completion = await async_client.completions.create(model="mock-gpt", prompt="x", max_tokens=1)
    assert completion.choices[0].text == "lorem "
    await async_client.close()


def test_openai_chat_on_anthropic_model_is_translated(client):
    completion = client.chat.completions.create(
        model="mock-claude", max_tokens=3,
        messages=[{"role": "system", "content": "Be brief"}, *HELLO])
    assert completion.choices[0].message.content == "lorem " * 3
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 3
    chunks = list(client.chat.completions.create(model="mock-claude", messages=HELLO, max_tokens=3, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "lorem " * 3
    assert chunks[-1].usage.completion_tokens == 3


@pytest.mark.parametrize("model", ["mock-claude", "mock-gpt"])
def test_anthropic_messages_create(claude, model):
    message = claude.messages.create(model=model, max_tokens=3, system="Be brief", messages=HELLO)
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "lorem " * 3
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 3


@pytest.mark.parametrize("model", ["mock-claude", "mock-gpt"])
def test_anthropic_messages_stream(claude, model):
    with claude.messages.stream(model=model, max_tokens=4, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "lorem " * 4
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4


def test_anthropic_raw_event_sequence_when_translated(claude):
    with claude.messages.create(model="mock-gpt", max_tokens=2, messages=HELLO, stream=True) as stream:
        kinds = [event.type for event in stream]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
