"""Takes anything that looks like a credential out of a text before it is stored or shown.

Upstream error messages are kept on failed spend logs for operators to read; providers sometimes
echo the key they were sent ("Incorrect API key provided: sk-proj-…"), a bearer token, or a URL
with ?key=. Those become [REDACTED]; the rest of the message stays readable.
"""
from __future__ import annotations

import re

REDACTED = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer xyz", "bearer xyz"
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{6,}"), rf"\1 {REDACTED}"),
    # key=..., api_key: "...", "x-api-key": '...', token=..., password=..., secret=...
    (re.compile(r"""(?ix)\b((?:[a-z_\-]*api[_\-]?key|x-api-key|key|token|access[_\-]?token|secret|password|
                     client[_\-]?secret|authorization)["']?\s*[:=]\s*["']?)[^\s"'&,;}]{4,}"""), rf"\1{REDACTED}"),
    # Well-known key shapes, wherever they appear.
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.…]{12,}"), REDACTED),
    (re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), REDACTED),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"), REDACTED),
    # Long unbroken runs of hex or base64 (digests, opaque tokens); ordinary words never reach 32.
    (re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9+/_\-]*\d)[A-Za-z0-9+/_\-]{32,}={0,2}"), REDACTED),
)


def scrub_secrets(text: str, *, limit: int = 2000) -> str:
    """The text with anything credential-like replaced by [REDACTED], cut to `limit` characters."""
    if not text:
        return ""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= limit else text[:limit - 1] + "…"
