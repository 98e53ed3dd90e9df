"""Management API for cross-session memory: list, read and delete summaries; forget an end user.

Authenticated like the rest of the management API (accounts/api/common.py); who sees what is
accounts.policy.memory_scope, and a summary the caller may not see is a 404, as a missing one is.
"""
from __future__ import annotations

from ninja import Query, Router

from accounts import policy
from accounts.api.common import actor_of, management_auth
from llmur.core.errors import LlmurError
from memory import schemas as s
from memory import selectors, services

router = Router(auth=management_auth, tags=["Memory"])


def _summary(request, summary_id: int):
    row = selectors.summary_get(summary_id=summary_id, visible=policy.memory_scope(actor_of(request)))
    if row is None:
        raise LlmurError(404, "not_found_error", f"There is no memory summary {summary_id}.", code="404")
    return row


@router.get("/memory/summaries", response=s.SummaryListOut, summary="Session summaries, newest first.")
def summary_list(request, project_id: int | None = None, end_user: str | None = None,
                 limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)):
    rows = selectors.summary_list(visible=policy.memory_scope(actor_of(request)), project_id=project_id,
                                  end_user=end_user, limit=limit, offset=offset)
    return {"data": [s.summary_out(row) for row in rows]}


@router.get("/memory/summaries/{summary_id}", response=s.SummaryDetailOut, summary="One summary with its text.")
def summary_info(request, summary_id: int):
    return s.summary_out(_summary(request, summary_id), with_text=True)


@router.delete("/memory/summaries/{summary_id}", response=s.SummaryDeletedOut, summary="Delete one summary.")
def summary_delete(request, summary_id: int):
    services.summary_delete(summary=_summary(request, summary_id))
    return {"deleted": summary_id}


@router.post("/memory/end_user/delete", response=s.ForgetOut,
             summary="Delete everything remembered of one end user (a privacy request).")
def end_user_forget(request, body: s.EndUserForgetIn):
    actor = actor_of(request)
    policy.require_may_forget_end_users(actor)
    counts = services.end_user_forget(end_user=body.end_user, visible=policy.memory_scope(actor))
    return {"end_user": body.end_user, "deleted_summaries": counts["summaries"], "deleted_turns": counts["turns"]}
