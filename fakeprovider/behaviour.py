"""What an upstream model name asks the fake provider to do.

The behaviour is read from the dash-separated tail of the model name, so any prefix works
(`mock-500`, `gpt-4o-500`, `fake-slow-200`):

  …-500          HTTP 500 with an OpenAI-style error body
  …-429          HTTP 429 with `retry-after: 1`
  …-400          HTTP 400 `context_length_exceeded`
  …-hang         accept the request and never answer
  …-cut          stream three chunks, then drop the connection (JSON answers are cut before the body)
  …-slow-<ms>    wait <ms> milliseconds before the first byte
  …-drip-<ms>    stream with <ms> milliseconds between chunks
  …-echo         answer with the text of the request's messages (system included), to show what was sent
  …-summary      answer with answers.SUMMARY, a known text (what a summarizer model would write)
  anything else  a normal answer of `--tokens` words
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How to answer one request; the defaults are a normal, immediate answer."""

    status: int = 200          # 200, or the error status to answer with
    hang: bool = False
    cut: bool = False
    echo: bool = False
    summary: bool = False
    first_byte_delay_s: float = 0.0
    chunk_delay_s: float | None = None   # None: the server's --chunk-delay-ms


NORMAL = Behaviour()
_ERRORS = {"500": 500, "429": 429, "400": 400}


@lru_cache(maxsize=4096)
def behaviour_for(model: str) -> Behaviour:
    """The behaviour a model name selects (cached: the benchmark sends the same few names)."""
    *head, last = model.split("-")
    previous = head[-1] if head else ""
    if last in _ERRORS and head:
        return Behaviour(status=_ERRORS[last])
    if last == "hang":
        return Behaviour(hang=True)
    if last == "cut":
        return Behaviour(cut=True)
    if last == "echo":
        return Behaviour(echo=True)
    if last == "summary":
        return Behaviour(summary=True)
    if last.isdigit() and previous == "slow":
        return Behaviour(first_byte_delay_s=int(last) / 1000)
    if last.isdigit() and previous == "drip":
        return Behaviour(chunk_delay_s=int(last) / 1000)
    return NORMAL
