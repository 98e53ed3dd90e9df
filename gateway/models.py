"""Upstream deployments: model_list entries from the config file and those added at run time."""
from __future__ import annotations

from django.db import models


class ModelDeployment(models.Model):
    """One upstream deployment of a model group, in LiteLLM's model_list shape."""

    class Source(models.TextChoices):
        CONFIG = "config", "Config file"
        DATABASE = "db", "Database"

    deployment_id = models.CharField(max_length=64, unique=True,
                                     help_text="Stable id: model_info.id, or derived from the config entry.")
    model_name = models.CharField(max_length=200, help_text="Model group clients ask for.")
    provider = models.CharField(max_length=32)
    litellm_params = models.JSONField(default=dict, help_text="Provider secrets are stored encrypted or as "
                                                              "os.environ/NAME references, never in plaintext.")
    model_info = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.DATABASE)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_name", "deployment_id"]
        indexes = [models.Index(fields=["model_name"], name="deployment_model_name")]

    def __str__(self) -> str:
        return f"{self.model_name} → {self.litellm_params.get('model', '?')}"


class RequestLog(models.Model):
    """A request's prompt and answer, redacted, for keys, projects or teams with log_requests on.

    Written off the request path (gateway.request_log), deleted after request_logging.retention_days
    by the purge task; owner references carry no database constraint, like SpendLog's.
    """

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True)
    key = models.ForeignKey("accounts.VirtualKey", null=True, blank=True, on_delete=models.DO_NOTHING,
                            db_constraint=False, related_name="+")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    project = models.ForeignKey("accounts.Project", null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+")
    user_id = models.BigIntegerField(null=True, blank=True)
    organization_id = models.BigIntegerField(null=True, blank=True)
    key_display = models.CharField(max_length=32, blank=True)
    call_type = models.CharField(max_length=32)
    model = models.CharField(max_length=200, help_text="Model group that served the request (after aliases).")
    deployment = models.CharField(max_length=200, blank=True)
    http_status = models.PositiveSmallIntegerField(default=200)
    stream = models.BooleanField(default=False)
    request_body = models.TextField(help_text="The request as received, with secrets and personal data redacted.")
    response_body = models.TextField(blank=True, help_text="The answer (for streams, its text), redacted.")
    truncated = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "request log"
        indexes = [models.Index(fields=["team", "-created_at"], name="reqlog_team_created")]

    def __str__(self) -> str:
        return self.request_id
