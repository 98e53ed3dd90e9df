"""Factories for billing tests: spend events as settlement writes them."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal


def spend_event(*, key=None, team=None, cost: str = "0.001", prompt: int = 100, completion: int = 20,
                model: str = "gpt-4o", when: datetime | None = None, success: bool = True,
                request_id: str | None = None):
    when = when or datetime.now(timezone.utc)
    return {
        "request_id": request_id or uuid.uuid4().hex,
        "key_id": key.pk if key else None, "user_id": None, "project_id": None,
        "team_id": team.pk if team else None, "organization_id": None,
        "key_display": "sk-…test", "call_type": "chat", "model": model, "deployment": "dep-1",
        "provider": "openai", "prompt_tokens": prompt, "completion_tokens": completion, "cost": str(Decimal(cost)),
        "success": success, "http_status": 200 if success else 500, "latency_ms": 12, "ttft_ms": 5,
        "started_at": when.isoformat(), "ended_at": (when + timedelta(milliseconds=12)).isoformat(),
        "cache_hit": False, "stream": False, "end_user": "", "metadata": {},
    }
