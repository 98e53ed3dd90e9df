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
