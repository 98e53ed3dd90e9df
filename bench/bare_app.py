"""The baseline llmur is held to: a bare Django + django-ninja async pass-through to the mock.

No authentication, limits, routing, accounting, metrics or middleware: one handler that forwards
the request body to the upstream with a pooled aiohttp session and returns the answer (streams
chunk by chunk). What llmur spends beyond this, measured in the same run, is the price of its
features (issue 9 quotes about 1,100 req/s at c=1 and 1,800 at c=32 for this shape).

Served by `gunicorn bench.bare_app:application -k uvicorn_worker.UvicornWorker -w 1` with
BENCH_UPSTREAM set to the mock's /v1/chat/completions URL.
"""
from __future__ import annotations

import os

import django
from django.conf import settings

settings.configure(DEBUG=False, SECRET_KEY="bench-bare-not-a-secret", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
                   MIDDLEWARE=[], INSTALLED_APPS=[], USE_TZ=True)
django.setup()

import aiohttp  # noqa: E402 - Django must be configured before ninja is imported
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from ninja import NinjaAPI  # noqa: E402

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100/v1/chat/completions")
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-upstream-bench"}
_session: aiohttp.ClientSession | None = None

api = NinjaAPI(docs_url=None, openapi_url=None)


def _client() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    return _session


@api.post("/v1/chat/completions")
async def chat_completions(request):
    body = request.body
    if b'"stream":true' in body.replace(b" ", b""):
        response = await _client().post(UPSTREAM, data=body, headers=HEADERS)

        async def relay():
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            finally:
                response.release()

        return StreamingHttpResponse(relay(), status=response.status, content_type="text/event-stream")
    async with _client().post(UPSTREAM, data=body, headers=HEADERS) as response:
        answer = await response.read()
        return HttpResponse(answer, status=response.status, content_type="application/json")


urlpatterns = [path("", api.urls)]
application = get_asgi_application()
