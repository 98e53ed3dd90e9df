"""Reads of cross-session memory: what to inject, what to summarize, what an operator may list."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from accounts.keys import secret_decrypt
from accounts.models import ProjectCredential
from memory.models import OWNER_FIELDS, MemorySubject, MemorySummary, SessionTurn

# Most summaries looked at for one injection (the newest first); max_injected_tokens decides how many fit.
INJECT_CANDIDATES = 50


def summary_text(summary: MemorySummary) -> str:
    return secret_decrypt(summary.encrypted_summary)


def summaries_for_injection(*, scope: str, subject: str, max_tokens: int) -> list[tuple[datetime, str]]:
    """The newest summaries of (scope, subject) that fit max_tokens together, oldest first."""
    rows = (MemorySummary.objects.filter(subject__scope=scope, subject__subject=subject)
            .order_by("-created_at", "-pk")[:INJECT_CANDIDATES])
    picked: list[tuple[datetime, str]] = []
    used = 0
    for row in rows:
        if used + row.summary_tokens > max_tokens:
            break
        used += row.summary_tokens
        picked.append((row.session_ended_at, summary_text(row)))
    return picked[::-1]


@dataclass
class SessionWork:
    """What summarizing one session needs: its turns (decrypted), its owners, the model and the previous summary."""

    subject_id: int
    session_id: str
    model: str
    turn_ids: list[int]
    turns: list[dict[str, Any]]
    started_at: datetime
    ended_at: datetime
    retention_days: int
    owners: dict[str, int | None]
    previous_summary: str = ""
    credentials: dict[str, str] = field(default_factory=dict)


def session_work(*, subject_id: int, session_id: str) -> SessionWork | None:
    """The pending turns of a session, oldest first; None when there are none."""
    rows = list(SessionTurn.objects.filter(subject_id=subject_id, session_id=session_id).order_by("created_at", "pk"))
    if not rows:
        return None
    last = rows[-1]
    owners = {name: getattr(last, name) for name in OWNER_FIELDS}
    previous = MemorySummary.objects.filter(subject_id=subject_id, session_id=session_id).first()
    credentials = ({c.provider: c.encrypted_api_key for c in ProjectCredential.objects.filter(project_id=last.project_id)}
                   if last.project_id is not None else {})
    return SessionWork(
        subject_id=subject_id, session_id=session_id, model=last.summarizer_model, turn_ids=[r.pk for r in rows],
        turns=[orjson.loads(secret_decrypt(r.encrypted_turn)) for r in rows], started_at=rows[0].created_at,
        ended_at=last.created_at, retention_days=max(1, (last.expires_at - last.created_at).days), owners=owners,
        previous_summary=summary_text(previous) if previous is not None else "", credentials=credentials)


def sessions_idle(*, now: datetime | None = None, limit: int = 100) -> list[tuple[int, str]]:
    """(subject id, session id) of sessions whose last turn went idle, the longest idle first."""
    now = now or timezone.now()
    return [(row["subject_id"], row["session_id"]) for row in
            SessionTurn.objects.values("subject_id", "session_id").annotate(last=Max("idle_at"))
            .filter(last__lt=now).order_by("last")[:limit]]


def session_subject(*, scope: str, subject: str) -> int | None:
    return MemorySubject.objects.filter(scope=scope, subject=subject).values_list("pk", flat=True).first()


def summary_list(*, visible: Q | None, project_id: int | None = None, end_user: str | None = None,
                 limit: int = 100, offset: int = 0) -> QuerySet[MemorySummary]:
    """Summaries the caller may see (visible: accounts.policy.memory_scope), newest first."""
    rows = MemorySummary.objects.select_related("subject").order_by("-created_at", "-pk")
    if visible is not None:
        rows = rows.filter(visible)
    if project_id is not None:
        rows = rows.filter(project_id=project_id)
    if end_user is not None:
        rows = rows.filter(subject__subject=f"end_user:{end_user}")
    return rows[offset:offset + limit]


def summary_get(*, summary_id: int, visible: Q | None) -> MemorySummary | None:
    rows = MemorySummary.objects.select_related("subject").filter(pk=summary_id)
    return (rows.filter(visible) if visible is not None else rows).first()
