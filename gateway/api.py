"""The OpenAI- and Anthropic-compatible API: /v1/* and, as LiteLLM serves them, the un-prefixed paths.

Handlers are one line: the pipeline (gateway.pipeline) does the work. Bodies are parsed there
once with orjson; the schemas below only describe them in /docs.
"""
from __future__ import annotations

from ninja import Field, Router, Schema

from gateway import litellm_routes, pipeline, v1_models
from gateway.memory import close as memory_close
from gateway.routing import litellm_headers
from gateway.schemas import ChatCompletionIn, CompletionIn, EmbeddingIn, MessagesIn, openapi_body

router = Router(tags=["LLM API"])


def _serve(request, call_type: str):
    """The pipeline, with the client's x-litellm-timeout in scope for the router."""
    litellm_headers.client_timeout.set(litellm_headers.client_timeout_from(request.META))
    return pipeline.run(request, call_type)


def _post(path: str, schema, name: str):
    """Register a handler at /v1{path} (documented) and at {path} (LiteLLM's un-prefixed alias)."""
    def register(func):
        router.post(f"/v1{path}", operation_id=name, openapi_extra=openapi_body(schema), summary=func.__doc__)(func)
        router.post(path, operation_id=f"{name}_unprefixed", include_in_schema=False)(func)
        return func
    return register


@_post("/chat/completions", ChatCompletionIn, "chat_completions")
async def chat_completions(request):
    """OpenAI chat completions, streaming (SSE) or not; `model` may list several ("a,b") for a list of answers."""
    if litellm_routes.is_batch(request.body):
        litellm_headers.client_timeout.set(litellm_headers.client_timeout_from(request.META))
        return await litellm_routes.batch_chat(request)
    return await _serve(request, "chat")


@_post("/completions", CompletionIn, "completions")
async def completions(request):
    """OpenAI legacy text completions, streaming (SSE) or not."""
    return await _serve(request, "completion")


@_post("/embeddings", EmbeddingIn, "embeddings")
async def embeddings(request):
    """OpenAI embeddings."""
    return await _serve(request, "embedding")


@router.post("/v1/messages", operation_id="messages", openapi_extra=openapi_body(MessagesIn),
             summary="Anthropic Messages API, streaming (SSE) or not; the anthropic-version header is accepted.")
async def messages(request):
    return await _serve(request, "messages")


@router.get("/v1/models", operation_id="models_list", summary="The models the calling key may use.")
@router.get("/models", operation_id="models_list_unprefixed", include_in_schema=False)
async def models_list(request):
    return await v1_models.models_list(request)


@router.get("/v1/models/{path:model_id}", operation_id="models_retrieve", summary="One model, if the key may use it.")
@router.get("/models/{path:model_id}", operation_id="models_retrieve_unprefixed", include_in_schema=False)
async def models_retrieve(request, model_id: str):
    return await v1_models.models_retrieve(request, model_id)


class MemoryCloseIn(Schema):
    user: str = Field("", max_length=200, description="The end user whose session it is (the requests' `user`).")


@router.post("/v1/memory/sessions/{session_id}/close", operation_id="memory_session_close",
             summary="Summarize a session now instead of when it goes idle (cross-session memory).")
async def memory_session_close(request, session_id: str, body: MemoryCloseIn | None = None):
    return await memory_close.session_close(request, session_id, body.user if body is not None else "")


# Azure OpenAI's paths, as the Azure SDKs call them (LiteLLM serves them too): the deployment names
# the model group. Not in the schema: /v1/chat/completions is the documented way.
@router.post("/openai/deployments/{path:deployment}/chat/completions", operation_id="azure_chat_completions",
             include_in_schema=False)
async def azure_chat_completions(request, deployment: str):
    litellm_headers.client_timeout.set(litellm_headers.client_timeout_from(request.META))
    return await litellm_routes.azure_deployment(request, "chat", deployment)


@router.post("/openai/deployments/{path:deployment}/completions", operation_id="azure_completions",
             include_in_schema=False)
async def azure_completions(request, deployment: str):
    litellm_headers.client_timeout.set(litellm_headers.client_timeout_from(request.META))
    return await litellm_routes.azure_deployment(request, "completion", deployment)


@router.post("/openai/deployments/{path:deployment}/embeddings", operation_id="azure_embeddings",
             include_in_schema=False)
async def azure_embeddings(request, deployment: str):
    litellm_headers.client_timeout.set(litellm_headers.client_timeout_from(request.META))
    return await litellm_routes.azure_deployment(request, "embedding", deployment)
