"""The one NinjaAPI: each app adds its router here; every error leaves in the OpenAI error shape.

OpenAPI docs are served at /docs. Handlers raise llmur.core.errors.LlmurError; ninja's own errors
(invalid fields, unparsable JSON, failed auth) are rendered in the same shape, with a message
that names the field to fix.
"""
from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.views.defaults import page_not_found
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from accounts.api import router as accounts_router
from accounts.device_api import oauth_router as device_oauth_router
from accounts.device_api import router as device_router
from billing.spend_api import router as spend_router
from gateway.api import router as llm_router
from gateway.model_api import router as model_router
from gateway.model_group_api import router as model_group_router
from gateway.pipeline import error_response as render
from gateway.pipeline import request_id_for
from llmur.core.errors import LlmurError
from memory.api import router as memory_router

logger = logging.getLogger("llmur.api")

api = NinjaAPI(title="llmur", version="1", docs_url="/docs", urls_namespace="llmur")


def error_response(exc: LlmurError, request: HttpRequest | None = None) -> HttpResponse:
    """The error in OpenAI's shape, or Anthropic's on the Messages API (/v1/messages), with x-request-id."""
    anthropic = request is not None and request.path.rstrip("/").endswith("/messages")
    return render(exc, anthropic=anthropic, request_id=request_id_for(request.META if request is not None else {}))


def _describe(error: dict) -> tuple[str, str]:
    """One validation error as (field path, message), e.g. ("max_budget", "Input should be a valid number")."""
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "payload", "form")]
    # ninja nests the body under the parameter name; drop that level when it is the only wrapper.
    if len(loc) > 1 and loc[0] in ("data", "body_in"):
        loc = loc[1:]
    return ".".join(loc) or "body", str(error.get("msg", "invalid value"))


@api.exception_handler(LlmurError)
def _llmur_error(request: HttpRequest, exc: LlmurError) -> HttpResponse:
    return error_response(exc, request)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = list(exc.errors or [])
    if not errors:
        return error_response(LlmurError(400, "invalid_request_error", "The request is not valid.", code="400"),
                              request)
    field, message = _describe(errors[0])
    if errors[0].get("type") == "json_invalid" or "parse" in message.lower():
        return error_response(LlmurError(400, "invalid_request_error", "The request body is not valid JSON.",
                                         code="400"), request)
    return error_response(LlmurError(400, "invalid_request_error", f"{field}: {message}", param=field, code="400"),
                          request)


@api.exception_handler(AuthenticationError)
def _authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(LlmurError(401, "auth_error", "Missing or invalid key: send Authorization: Bearer KEY.",
                                     code="401"), request)


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    kind = "invalid_request_error" if exc.status_code < 500 else "api_error"
    message = str(exc)
    if "parse" in message.lower():
        message = "The request body is not valid JSON."
    return error_response(LlmurError(exc.status_code, kind, message, code=str(exc.status_code)), request)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(LlmurError(404, "not_found_error", "Not found.", code="404"), request)


@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def _database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    # The database is down or the pool timed out waiting for a connection: the client may retry.
    logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc.__class__.__name__)
    return error_response(LlmurError(503, "api_error", "The database is unavailable; try again shortly.",
                                     code="503", headers={"Retry-After": "5"}), request)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: an unknown path answers in the API's error shape; the admin keeps its HTML page."""
    if request.path.startswith("/admin/"):
        return page_not_found(request, exception)
    return error_response(LlmurError(404, "not_found_error", f"There is no endpoint {request.method} "
                                     f"{shown(request.path)}; the API reference is at /docs.", code="404"), request)


def shown(text: str, limit: int = 200) -> str:
    """Client input echoed in an error, cut to a length fit for a message."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Logged with its traceback for operators; the client gets one line and never internals.
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(LlmurError(500, "api_error", "Internal error; the server log has the details.",
                                     code="500"), request)


# Each app's router, mounted at the root.
for _router in (llm_router, accounts_router, device_oauth_router, device_router, model_router, model_group_router,
                spend_router, memory_router):
    api.add_router("", _router)


@api.get("/routes", auth=None, include_in_schema=False)
def routes(request: HttpRequest) -> dict:
    """LiteLLM's /routes: the API's paths and methods (public, as the /docs page is)."""
    out = []
    for prefix, router in api._routers:
        for path, operations in router.path_operations.items():
            methods = sorted({m for op in operations.operations for m in op.methods})
            out.append({"path": "/" + (prefix + path).lstrip("/"), "methods": methods})
    return {"routes": sorted(out, key=lambda r: r["path"])}
