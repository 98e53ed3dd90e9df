"""The access log: one line per request with its id, key alias, model, deployment, status, tokens, latency."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import mock_model_list, start_gateway
from tests.factories import make_key

PROMPT = "tell me the launch codes 7a1f"
# The servers read the test database, so it must exist even when only these tests run.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def aliased_key(transactional_db) -> str:
    return make_key(key_alias="ci-bot").plaintext


def _chat(url: str, key: str, request_id: str) -> tuple[int, str]:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": PROMPT}]}
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json", "x-request-id": request_id})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            response.read()
            return response.status, response.headers["x-request-id"]
    except urllib.error.HTTPError as error:
        return error.code, error.headers["x-request-id"]


def _line(server, needle: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.output().splitlines():
            if needle in line and "llmur.access" in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no access line with {needle!r} in:\n{server.output()}")


@pytest.fixture(scope="module")
def json_server(django_db_setup, fake_provider):
    server = start_gateway({"model_list": mock_model_list(fake_provider.url), "log_format": "json"})
    yield server
    server.stop()


def test_json_access_line_carries_the_request_and_no_secret(json_server, aliased_key):
    status, echoed = _chat(json_server.url, aliased_key, "trace-abc-123")
    assert (status, echoed) == (200, "trace-abc-123")
    line = json.loads(_line(json_server, "trace-abc-123"))
    assert line["logger"] == "llmur.access" and line["level"] == "INFO"
    # llmur's own id (the SpendLog key) beside the client's x-request-id.
    assert line["client_request_id"] == "trace-abc-123" and len(line["request_id"]) == 32
    assert (line["key"], line["model"], line["status"]) == ("ci-bot", "mock-gpt", 200)
    assert line["deployment"] and line["prompt_tokens"] > 0 and line["completion_tokens"] > 0
    assert line["latency_ms"] >= 0 and line["stream"] is False
    assert aliased_key not in json_server.output()
    assert PROMPT not in json_server.output()


def test_a_rejected_request_gets_a_line_with_its_status(json_server):
    status, echoed = _chat(json_server.url, "sk-wrong-key-0000", "trace-rejected-1")
    assert (status, echoed) == (401, "trace-rejected-1")
    line = json.loads(_line(json_server, "trace-rejected-1"))
    assert (line["status"], line["error"]) == (401, "invalid_api_key")
    assert "sk-wrong-key-0000" not in json_server.output()


def test_text_access_line_and_prompts_only_when_turned_on(django_db_setup, fake_provider, aliased_key):
    server = start_gateway({"model_list": mock_model_list(fake_provider.url), "log_prompts": True})
    try:
        assert _chat(server.url, aliased_key, "trace-text-9")[0] == 200
        line = _line(server, "client_request_id=trace-text-9")
        assert " key=ci-bot " in line and " model=mock-gpt " in line and " status=200 " in line
        assert PROMPT in line
        assert aliased_key not in server.output()
    finally:
        server.stop()


def test_access_log_and_metrics_can_be_turned_off(django_db_setup, fake_provider, aliased_key):
    server = start_gateway({"model_list": mock_model_list(fake_provider.url), "access_log": False,
                            "metrics": {"enabled": False}})
    try:
        assert _chat(server.url, aliased_key, "trace-quiet-1")[0] == 200
        request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.master_key}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 404
        time.sleep(0.3)
        assert "trace-quiet-1" not in server.output()
    finally:
        server.stop()


class _Refusal:
    status, type = 429, "rate_limit_error"


def test_lines_are_written_after_the_response_path_in_order(caplog):
    """Inside an event loop a line waits for the loop's next iteration (after the answer went out),
    then the queued lines are written in the order they were queued; without a loop, at once."""
    import asyncio
    import logging

    from llmur.core import accesslog

    caplog.set_level(logging.INFO, logger="llmur.access")

    def written() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "llmur.access"]

    async def scenario() -> tuple[list[str], list[str]]:
        accesslog.request_rejected(_Refusal(), "req-1")
        accesslog.request_rejected(_Refusal(), "req-2", "client-2")
        during = written()
        await asyncio.sleep(0)    # one loop iteration: the flush runs
        return during, written()

    during, after = asyncio.run(scenario())
    assert during == []
    assert after == ["request_id=req-1 status=429 error=rate_limit_error",
                     "request_id=req-2 client_request_id=client-2 status=429 error=rate_limit_error"]

    accesslog.request_rejected(_Refusal(), "req-3")
    assert written()[-1] == "request_id=req-3 status=429 error=rate_limit_error"


def test_a_line_queued_on_a_loop_that_closed_is_written_by_the_next_one(caplog):
    import asyncio
    import logging

    from llmur.core import accesslog

    caplog.set_level(logging.INFO, logger="llmur.access")
    loop = asyncio.new_event_loop()
    # Queued in a callback that also stops the loop: the flush it scheduled never runs there.
    loop.call_soon(lambda: (accesslog.request_rejected(_Refusal(), "req-stranded"), loop.stop()))
    loop.run_forever()
    loop.close()
    assert not [r for r in caplog.records if r.name == "llmur.access"]

    async def next_loop() -> None:
        accesslog.request_rejected(_Refusal(), "req-next")
        await asyncio.sleep(0)

    asyncio.run(next_loop())
    lines = [r.getMessage() for r in caplog.records if r.name == "llmur.access"]
    assert [line.split()[0] for line in lines] == ["request_id=req-stranded", "request_id=req-next"]
