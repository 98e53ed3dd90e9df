"""Process set-up for llmur's operational signals: Prometheus's multiprocess directory and tracing.

Prometheus (prometheus_prepare, run from settings.py before any metric exists):

Prometheus counters must add up across every worker process of a server (gunicorn forks N
uvicorn workers, Celery forks its pool). prometheus_client does that in its multiprocess mode:
each process writes its values to memory-mapped files in PROMETHEUS_MULTIPROC_DIR and a scrape
reads them all. The directory has to be chosen before prometheus_client is first imported, and
has to be fresh for each server (stale files from an earlier run would be added in), so every
llmur process that starts from scratch takes var/prometheus/<its pid>; the processes it forks
inherit it. https://prometheus.github.io/client_python/multiprocess/

OpenTelemetry (only when `otel.exporter_otlp_endpoint` is set; otherwise nothing is imported and
the hooks return at once): a server span per HTTP request from the ASGI instrumentation, which
wraps the whole application because the /v1 hot path bypasses Django's middleware (where the
Django instrumentation would sit), and a client span per upstream attempt carrying the GenAI
semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/) plus llmur's own
attributes. The upstream request carries the W3C traceparent of that span. Spans go out over
OTLP/HTTP in batches.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from llmur.core.processes import pid_alive

# Set alongside PROMETHEUS_MULTIPROC_DIR when llmur chose it, so a process started by an llmur
# process (tests, `manage.py` from a shell in a pod) takes its own directory instead of sharing
# its parent's, while a directory the operator set explicitly is respected.
OWNER_VARIABLE = "LLMUR_PROMETHEUS_OWNER"

multiprocess = False


def prometheus_prepare(var_dir: Path) -> None:
    """Choose this process's Prometheus multiprocess directory and remove those of dead processes."""
    global multiprocess
    if "prometheus_client" in sys.modules:
        # Imported already (an embedding program or a test runner): it keeps its in-process registry.
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")) and _directory_usable()
        return
    explicit = os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not os.environ.get(OWNER_VARIABLE)
    if explicit:
        multiprocess = _directory_usable()
        return
    root = Path(var_dir) / "prometheus"
    directory = root / str(os.getpid())
    try:
        if root.is_dir():
            for old in root.iterdir():
                if old.name.isdigit() and int(old.name) != os.getpid() and not pid_alive(int(old.name)):
                    shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    except OSError:
        # A read-only var/ leaves metrics per process rather than stopping the server.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        multiprocess = False
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    os.environ[OWNER_VARIABLE] = str(os.getpid())
    multiprocess = True


def _directory_usable() -> bool:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return bool(directory) and os.path.isdir(directory) and os.access(directory, os.W_OK)


# --------------------------------------------------------------------------- tracing

_tracer: Any = None
_provider: Any = None

_OPERATIONS = {"chat": "chat", "messages": "chat", "completion": "text_completion", "embedding": "embeddings"}
_SYSTEMS = {"azure": "az.ai.openai"}
_REQUEST_PARAMETERS = {"max_tokens": "gen_ai.request.max_tokens", "temperature": "gen_ai.request.temperature",
                       "top_p": "gen_ai.request.top_p"}


def _traces_url(endpoint: str) -> str:
    """OTLP/HTTP endpoint as given (collector base URL, or the full /v1/traces URL)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def tracing_setup(*, version: str = "") -> bool:
    """Start exporting spans if the config names an OTLP endpoint; True when tracing is on."""
    global _tracer, _provider
    from django.conf import settings

    otel = settings.LLMUR.config.otel
    if not otel.exporter_otlp_endpoint:
        return False
    if _tracer is not None:
        return True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    _provider = TracerProvider(resource=Resource.create({"service.name": otel.service_name,
                                                         "service.version": version}))
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(otel.exporter_otlp_endpoint))))
    trace.set_tracer_provider(_provider)
    _tracer = trace.get_tracer("llmur")
    return True


async def tracing_shutdown() -> None:
    """Send the spans still batched (a lifespan shutdown hook)."""
    if _provider is not None:
        import asyncio

        await asyncio.to_thread(_provider.shutdown)


def asgi_tracing(app: Any, *, version: str = "") -> Any:
    """The ASGI application wrapped to open a server span per request (and read an incoming traceparent)."""
    if not tracing_setup(version=version):
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    # Probes and scrapes would drown the traces; per-message send/receive spans cost a span per streamed part.
    return OpenTelemetryMiddleware(app, excluded_urls="health/liveliness,health/readiness,metrics",
                                   exclude_spans=["receive", "send"])


def trace_attempts(attempt: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
    """Wrap one upstream attempt (gateway.upstream.call_once / gateway.relay.open_stream) in a GenAI client span."""
    if _tracer is None:
        return attempt

    async def traced(ctx: Any, dep: Any) -> Any:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        operation = _OPERATIONS.get(ctx.call_type, ctx.call_type)
        principal = ctx.principal
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.system": _SYSTEMS.get(dep.provider, dep.provider),
            "gen_ai.request.model": dep.model,
            "llmur.request_id": ctx.request_id,
            "llmur.model_group": ctx.model,
            "llmur.deployment": dep.id,
            "llmur.stream": ctx.stream,
        }
        if principal is not None:
            attributes["llmur.key_alias"] = principal.alias or principal.display
            if principal.team_id:
                attributes["llmur.team_id"] = principal.team_id
        for name, attribute in _REQUEST_PARAMETERS.items():
            value = ctx.body.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[attribute] = value
        span = _tracer.start_span(f"{operation} {dep.model}", kind=SpanKind.CLIENT, attributes=attributes)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                result = await attempt(ctx, dep)
        except BaseException as exc:
            status = getattr(exc, "status", None)
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
            span.set_attribute("error.type", str(getattr(exc, "type", "") or exc.__class__.__name__))
            span.set_status(Status(StatusCode.ERROR))
            span.end()
            raise
        # Ended when the request is settled: a stream is still flowing, and usage is known only then.
        ctx.otel_span = span
        return result

    return traced


def upstream_call(ctx: Any, call: Any) -> None:
    """Just before an attempt's request goes out: note the time and hand the trace context upstream."""
    ctx.upstream_started = time.monotonic()
    if _tracer is not None:
        from opentelemetry import propagate

        propagate.inject(call.request.headers)


def _epoch_ns(monotonic: float) -> int:
    return time.time_ns() - int((time.monotonic() - monotonic) * 1e9)


def request_finished(ctx: Any) -> None:
    """Close the answering attempt's span with usage, and label the server span with who and what."""
    if _tracer is None:
        return
    from opentelemetry import trace

    server = trace.get_current_span()
    if server.is_recording():
        server.set_attribute("llmur.request_id", ctx.request_id)
        if ctx.client_request_id:
            server.set_attribute("llmur.client_request_id", ctx.client_request_id)
        if ctx.response_id:
            server.set_attribute("gen_ai.response.id", ctx.response_id)
        server.set_attribute("llmur.model_group", ctx.model)
        server.set_attribute("llmur.cache_hit", bool(ctx.cache_hit))
        if ctx.deployment_id:
            server.set_attribute("llmur.deployment", ctx.deployment_id)
        if ctx.principal is not None:
            server.set_attribute("llmur.key_alias", ctx.principal.alias or ctx.principal.display)
    span, ctx.otel_span = ctx.otel_span, None
    if span is None:
        return
    span.set_attribute("gen_ai.usage.input_tokens", ctx.usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", ctx.usage.completion_tokens)
    span.set_attribute("http.response.status_code", ctx.http_status)
    if ctx.stream or ctx.first_byte_monotonic is None:
        span.end()
    else:
        span.end(end_time=_epoch_ns(ctx.first_byte_monotonic))
