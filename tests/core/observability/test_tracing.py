"""OpenTelemetry: a server span, a child GenAI span per upstream call, and traceparent sent upstream.

The server exports over real OTLP/HTTP to a collector stand-in in this process, which decodes the
protobuf payloads; the upstream stand-in records the headers llmur sends it.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT_ID = "00f067aa0ba902b7"


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.received: list = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Upstream(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that remembers each request's headers."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append({k.lower(): v for k, v in self.headers.items()})
        answer = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: decodes ExportTraceServiceRequest into plain dicts."""

    def do_POST(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        payload = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        for resource in payload.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}.get("service.name")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.server.received.append({
                        "service": service, "name": span.name, "kind": span.kind,
                        "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex(),
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                    })
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def _value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _model_list(upstream_url: str) -> list[dict]:
    return [{"model_name": "traced-gpt", "litellm_params": {"model": "openai/gpt-4o-mini",
                                                            "api_base": f"{upstream_url}/v1", "api_key": "sk-up"}}]


def _chat(url: str, key: str, headers: dict[str, str] | None = None) -> int:
    body = {"model": "traced-gpt", "messages": [{"role": "user", "content": "hello"}], "temperature": 0.2,
            "max_tokens": 64}
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=20) as response:
        response.read()
        return response.status


@pytest.fixture
def upstream():
    server = _Recorder(_Upstream)
    yield server
    server.shutdown()


def test_a_traced_request_has_a_server_span_and_a_child_genai_span_with_traceparent_upstream(
        django_db_setup, upstream):
    collector = _Recorder(_Collector)
    server = start_gateway({"model_list": _model_list(upstream.url),
                            "otel": {"exporter_otlp_endpoint": collector.url, "service_name": "llmur-test"}},
                           env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
    try:
        traceparent = f"00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-01"
        assert _chat(server.url, server.master_key, {"traceparent": traceparent, "x-request-id": "trace-me-1"}) == 200
        deadline = time.monotonic() + 15
        spans: list[dict] = []
        while time.monotonic() < deadline:
            spans = [s for s in collector.received if s["trace_id"] == CLIENT_TRACE_ID]
            if len(spans) >= 2:
                break
            time.sleep(0.1)
    finally:
        server.stop()
        collector.shutdown()
    kinds = {span["kind"]: span for span in spans}
    server_span, client_span = kinds[2], kinds[3]  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT
    assert server_span["service"] == client_span["service"] == "llmur-test"
    # The server span continues the client's trace; the upstream span is its child.
    assert server_span["parent_id"] == CLIENT_PARENT_ID
    assert client_span["parent_id"] == server_span["span_id"]
    # Spend is keyed on llmur's own id; the client's x-request-id is kept beside it.
    assert server_span["attributes"]["llmur.client_request_id"] == "trace-me-1"
    assert re.fullmatch(r"[0-9a-f]{32}", server_span["attributes"]["llmur.request_id"])
    assert server_span["attributes"]["llmur.cache_hit"] is False

    assert client_span["name"] == "chat gpt-4o-mini"
    attributes = client_span["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.max_tokens"] == 64
    assert attributes["gen_ai.request.temperature"] == pytest.approx(0.2)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (11, 7)
    assert attributes["llmur.model_group"] == "traced-gpt"
    assert attributes["llmur.key_alias"] == "master key"
    assert attributes["llmur.deployment"]
    assert attributes["http.response.status_code"] == 200
    assert not any("sk-" in str(value) for span in spans for value in span["attributes"].values())

    # The upstream was called within the same trace, as a child of the GenAI span.
    sent = upstream.received[-1]["traceparent"]
    assert sent == f"00-{CLIENT_TRACE_ID}-{client_span['span_id']}-01"


def test_without_an_otlp_endpoint_nothing_is_traced_or_propagated(django_db_setup, upstream):
    server = start_gateway({"model_list": _model_list(upstream.url)})
    try:
        assert _chat(server.url, server.master_key, {"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_PARENT_ID}-01"}) == 200
    finally:
        server.stop()
    assert "traceparent" not in upstream.received[-1]
