"""Admin pages of cross-session memory: summaries, each read and deleted by whoever the policy lets
(accounts.policy.memory_scope), and an action that forgets the selected summaries' end users."""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import policy
from accounts.policy import Actor, StaffMayView
from llmur.core.errors import LlmurError
from memory import services
from memory.models import MemorySummary
from memory.selectors import summary_text


@admin.register(MemorySummary)
class MemorySummaryAdmin(StaffMayView, admin.ModelAdmin):
    """What finished sessions concluded, per end user and scope; delete one, or forget an end user."""

    list_display = ["created_at", "end_user", "scope", "session_id", "model", "turns", "cost", "expires_at"]
    list_filter = [("created_at", admin.DateFieldListFilter), "model"]
    search_fields = ["=session_id", "subject__subject"]
    list_select_related = ["subject"]
    show_full_result_count = False
    fields = ["end_user", "scope", "memory_id", "session_id", "summary", "model", "turns", "prompt_tokens",
              "completion_tokens", "cost", "request_id", "session_started_at", "session_ended_at", "created_at",
              "expires_at"]
    readonly_fields = fields
    actions = ["forget_end_users"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request)
        visible = policy.memory_scope(Actor.of_request(request))
        return rows if visible is None else rows.filter(visible)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The rows a user sees are the ones the policy lets them delete (get_queryset narrows them).
        return self.has_view_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: MemorySummary) -> None:
        services.summary_delete(summary=obj)

    @admin.display(description="end user")
    def end_user(self, obj: MemorySummary) -> str:
        return obj.subject.end_user or f"(the key's owner: {obj.subject.subject})"

    @admin.display(description="scope")
    def scope(self, obj: MemorySummary) -> str:
        return obj.subject.scope

    @admin.display(description="memory id")
    def memory_id(self, obj: MemorySummary) -> str:
        return str(obj.subject.public_id)

    @admin.display(description="summary")
    def summary(self, obj: MemorySummary) -> str:
        return summary_text(obj)

    @admin.action(description="Forget the selected summaries' end users (everything remembered of them)")
    def forget_end_users(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = Actor.of_request(request)
        try:
            policy.require_may_forget_end_users(actor)
        except LlmurError as error:
            self.message_user(request, error.message, messages.ERROR)
            return
        end_users = {row.subject.end_user for row in queryset.select_related("subject") if row.subject.end_user}
        deleted = sum(services.end_user_forget(end_user=name, visible=policy.memory_scope(actor))["summaries"]
                      for name in sorted(end_users))
        self.message_user(request, f"Forgot {len(end_users)} end user(s): {deleted} summaries deleted.",
                          messages.SUCCESS)
