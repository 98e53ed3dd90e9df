"""Cross-session memory: who remembers (an end user within a scope), what is pending, what was summarized.

Session text is stored encrypted under application_secret, as provider keys are (accounts/keys.py).
"""
from __future__ import annotations

import uuid

from django.db import models

MONEY = {"max_digits": 18, "decimal_places": 8}
# Owners copied from the key that made the session: what the summarization is charged to, and what
# the policy (accounts/policy/memory.py) filters on.
OWNER_FIELDS = ("key_id", "user_id", "project_id", "team_id", "organization_id")


class MemorySubject(models.Model):
    """One end user within one memory scope (a project, else a team, else a key), with a stable id."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # "project:<id>", "team:<id>" or "key:<id>": summaries never cross it.
    scope = models.CharField(max_length=40)
    # "end_user:<the request's user field>", else the key's owner: "user:<id>" or "key:<id>".
    subject = models.CharField(max_length=240)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "subject"], name="uniq_memory_subject")]

    def __str__(self) -> str:
        return f"{self.subject} in {self.scope}"

    @property
    def end_user(self) -> str:
        """The request's user field, when the subject is one ('' for a key's owner)."""
        return self.subject.partition(":")[2] if self.subject.startswith("end_user:") else ""


class _Owned(models.Model):
    key_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    project_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    organization_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class SessionTurn(_Owned):
    """One request and its answer in a session not yet summarized, encrypted."""

    subject = models.ForeignKey(MemorySubject, on_delete=models.CASCADE, related_name="turns")
    session_id = models.CharField(max_length=128)
    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    # The session is summarized once its last turn's idle_at has passed; kept at most until expires_at.
    idle_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    summarizer_model = models.CharField(max_length=200)
    encrypted_turn = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["subject", "session_id", "created_at"], name="memory_turn_session")]


class MemorySummary(_Owned):
    """What one finished session concluded, encrypted; injected into the subject's next sessions."""

    subject = models.ForeignKey(MemorySubject, on_delete=models.CASCADE, related_name="summaries")
    session_id = models.CharField(max_length=128)
    encrypted_summary = models.TextField()
    model = models.CharField(max_length=200)
    turns = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    summary_tokens = models.PositiveIntegerField(default=0, help_text="Estimated size when injected.")
    cost = models.DecimalField(**MONEY, default=0)
    request_id = models.CharField(max_length=64, help_text="The summarization's spend log entry.")
    session_started_at = models.DateTimeField()
    session_ended_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name_plural = "memory summaries"
        constraints = [models.UniqueConstraint(fields=["subject", "session_id"], name="uniq_memory_summary")]
        indexes = [models.Index(fields=["subject", "-created_at"], name="memory_summary_recent")]

    def __str__(self) -> str:
        return f"session {self.session_id} of {self.subject}"
