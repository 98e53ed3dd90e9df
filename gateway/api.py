"""The OpenAI- and Anthropic-compatible API: /v1/* and, as LiteLLM serves them, the un-prefixed paths.

Handlers are one line: the pipeline (gateway.pipeline) does the work. Bodies are parsed there
once with orjson; the schemas below only describe them in /docs.
"""
from __future__ import annotations

from ninja import Router

from gateway import pipeline, v1_models
from gateway.schemas import ChatCompletionIn, CompletionIn, EmbeddingIn, MessagesIn, openapi_body

router = Router(tags=["LLM API"])


def _post(path: str, schema, name: str):
    """Register a handler at /v1{path} (documented) and at {path} (LiteLLM's un-prefixed alias)."""
    def register(func):
        router.post(f"/v1{path}", operation_id=name, openapi_extra=openapi_body(schema), summary=func.__doc__)(func)
        router.post(path, operation_id=f"{name}_unprefixed", include_in_schema=False)(func)
        return func
    return register


@_post("/chat/completions", ChatCompletionIn, "chat_completions")
async def chat_completions(request):
    """OpenAI chat completions, streaming (SSE) or not."""
    return await pipeline.run(request, "chat")


@_post("/completions", CompletionIn, "completions")
async def completions(request):
    """OpenAI legacy text completions, streaming (SSE) or not."""
    return await pipeline.run(request, "completion")


@_post("/embeddings", EmbeddingIn, "embeddings")
async def embeddings(request):
    """OpenAI embeddings."""
    return await pipeline.run(request, "embedding")


@router.post("/v1/messages", operation_id="messages", openapi_extra=openapi_body(MessagesIn),
             summary="Anthropic Messages API, streaming (SSE) or not; the anthropic-version header is accepted.")
async def messages(request):
    return await pipeline.run(request, "messages")


@router.get("/v1/models", operation_id="models_list", summary="The models the calling key may use.")
@router.get("/models", operation_id="models_list_unprefixed", include_in_schema=False)
async def models_list(request):
    return await v1_models.models_list(request)


@router.get("/v1/models/{path:model_id}", operation_id="models_retrieve", summary="One model, if the key may use it.")
@router.get("/models/{path:model_id}", operation_id="models_retrieve_unprefixed", include_in_schema=False)
async def models_retrieve(request, model_id: str):
    return await v1_models.models_retrieve(request, model_id)
