"""What it cost: prices, one row per request, and daily rollups."""
from __future__ import annotations

from decimal import Decimal

from django.db import models

PRICE = {"max_digits": 20, "decimal_places": 12}
MONEY = {"max_digits": 18, "decimal_places": 8}


class ModelPrice(models.Model):
    """Cost per input and output token of one upstream model, in US dollars."""

    model = models.CharField(max_length=200, unique=True,
                             help_text="Upstream model name, e.g. gpt-4o or claude-sonnet-4-20250514.")
    provider = models.CharField(max_length=32, blank=True)
    input_cost_per_token = models.DecimalField(**PRICE, default=Decimal(0))
    output_cost_per_token = models.DecimalField(**PRICE, default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class SpendLog(models.Model):
    """One gateway request: who, which model and deployment, tokens, cost, outcome.

    Entity references carry no database constraint: a log row must outlive the key, team or user
    it names, and the bulk insert from the spend queue must never fail on a deleted owner.
    """

    class Status(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"

    request_id = models.CharField(max_length=64, unique=True)
    key = models.ForeignKey("accounts.VirtualKey", null=True, blank=True, on_delete=models.DO_NOTHING,
                            db_constraint=False, related_name="+")
    user = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    project = models.ForeignKey("accounts.Project", null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    organization = models.ForeignKey("accounts.Organization", null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="+")
    key_display = models.CharField(max_length=32, blank=True)
    call_type = models.CharField(max_length=32, default="chat")
    model = models.CharField(max_length=200, help_text="Model group the caller asked for.")
    deployment = models.CharField(max_length=200, blank=True, help_text="Deployment that answered.")
    provider = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**MONEY, default=Decimal(0))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCESS)
    http_status = models.PositiveSmallIntegerField(default=200)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    cache_hit = models.BooleanField(default=False)
    stream = models.BooleanField(default=False)
    end_user = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Set in the same transaction that adds the row's cost to its owners' spend fields, so a
    # redelivered event (same request_id) can never be counted twice.
    booked = models.BooleanField(default=False, editable=False)
    # Cleared when the row is inserted; set by the rollup that recomputes the row's day.
    rolled_up = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["rolled_up"], name="spend_rolled_up"),
            models.Index(fields=["-started_at"], name="spend_started"),
            models.Index(fields=["key", "-started_at"], name="spend_key_started"),
            models.Index(fields=["user", "-started_at"], name="spend_user_started"),
            models.Index(fields=["team", "-started_at"], name="spend_team_started"),
            models.Index(fields=["project", "-started_at"], name="spend_project_started"),
            models.Index(fields=["model", "-started_at"], name="spend_model_started"),
        ]

    def __str__(self) -> str:
        return self.request_id


class DailySpend(models.Model):
    """SpendLog rolled up per day and owner and model; what reports and the dashboard read."""

    day = models.DateField()
    key = models.ForeignKey("accounts.VirtualKey", null=True, blank=True, on_delete=models.DO_NOTHING,
                            db_constraint=False, related_name="+")
    user = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    project = models.ForeignKey("accounts.Project", null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    organization = models.ForeignKey("accounts.Organization", null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="+")
    model = models.CharField(max_length=200)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(**MONEY, default=Decimal(0))
    requests = models.PositiveIntegerField(default=0)
    failed_requests = models.PositiveIntegerField(default=0)
    cache_hits = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["day", "key", "user", "project", "team", "organization", "model"],
                                    name="uniq_daily_spend"),
        ]
        indexes = [
            models.Index(fields=["day", "team"], name="daily_day_team"),
            models.Index(fields=["day", "model"], name="daily_day_model"),
            models.Index(fields=["key", "day"], name="daily_key_day"),
        ]


class SpendTotals(models.Model):
    """The measures every rollup carries (abstract)."""

    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(**MONEY, default=Decimal(0))
    requests = models.PositiveIntegerField(default=0)
    failed_requests = models.PositiveIntegerField(default=0)
    cache_hits = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


# The coarse rollups below are DailySpend summed to fewer columns, so reports and the dashboard
# read 10-1000x fewer rows (10 M SpendLog rows: DailySpend ~1 M rows, these ~1 k / 40 k / 90 k).
# billing.rollups keeps them equal to DailySpend; billing.reports picks the smallest that answers.


class SpendByModel(SpendTotals):
    """DailySpend per day and model: the chart, totals and top models of the dashboard."""

    day = models.DateField()
    model = models.CharField(max_length=200)

    class Meta:
        ordering = ["-day", "model"]
        verbose_name_plural = "spend by model"
        indexes = [models.Index(fields=["day", "model"], name="spend_model_day")]


class SpendByTeam(SpendTotals):
    """DailySpend per day, team (and its organization) and model: reports by team, organization, model."""

    day = models.DateField()
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    organization = models.ForeignKey("accounts.Organization", null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="+")
    model = models.CharField(max_length=200)

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "spend by team"
        indexes = [models.Index(fields=["day", "team"], name="spend_team_day")]


class SpendByOwner(SpendTotals):
    """DailySpend per day and owner (key, user, project, team, organization) across models."""

    day = models.DateField()
    key = models.ForeignKey("accounts.VirtualKey", null=True, blank=True, on_delete=models.DO_NOTHING,
                            db_constraint=False, related_name="+")
    user = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    project = models.ForeignKey("accounts.Project", null=True, blank=True, on_delete=models.DO_NOTHING,
                                db_constraint=False, related_name="+")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING,
                             db_constraint=False, related_name="+")
    organization = models.ForeignKey("accounts.Organization", null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="+")

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "spend by owner"
        indexes = [models.Index(fields=["day", "key"], name="spend_owner_day")]


class RollupMark(models.Model):
    """The highest DailySpend id the coarse rollups include; a higher one means days to recompute.

    DailySpend rows are only ever replaced a day at a time (delete + insert, new ids), so every
    changed day shows up as rows above the mark.
    """

    name = models.CharField(max_length=64, unique=True)
    daily_spend_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.daily_spend_id}"


class JobLock(models.Model):
    """A row that a periodic billing job locks (SELECT ... FOR UPDATE) so two runs never overlap."""

    name = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.name


class TeamAlertSetting(models.Model):
    """A team's own budget-alert thresholds and recipients, on top of the config's `alerting:` block.

    They apply to the team's budget and to the budgets of its keys and projects.
    """

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="alert_setting")
    enabled = models.BooleanField(default=True, help_text="Off: no alerts for this team, its keys or projects.")
    thresholds = models.JSONField(default=list, blank=True,
                                  help_text="Percentages of max_budget, e.g. [50, 80, 100]; empty: the config's.")
    webhook_url = models.URLField(blank=True, help_text="Signed with the config's alerting.webhook_secret.")
    email_to = models.CharField(max_length=1000, blank=True, help_text="Comma-separated e-mail addresses.")

    class Meta:
        verbose_name = "team alert setting"

    def __str__(self) -> str:
        return f"alerts of {self.team}"


class BudgetAlert(models.Model):
    """One threshold of one budget crossed in one budget period; the unique constraint makes it once."""

    entity_kind = models.CharField(max_length=16)
    entity_id = models.BigIntegerField()
    entity_name = models.CharField(max_length=200, blank=True)
    threshold = models.CharField(max_length=16, help_text='"soft" (soft_budget) or a percentage of max_budget.')
    threshold_amount = models.DecimalField(**MONEY)
    spend = models.DecimalField(**MONEY, help_text="Spend when the crossing was booked.")
    max_budget = models.DecimalField(**MONEY, null=True, blank=True)
    period_start = models.DateTimeField(help_text="Start of the budget period (1970 for budgets that never reset).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["entity_kind", "entity_id", "threshold", "period_start"],
                                    name="uniq_budget_alert_per_period"),
        ]

    def __str__(self) -> str:
        return f"{self.entity_kind} {self.entity_name or self.entity_id}: {self.threshold}"


class AlertDelivery(models.Model):
    """One channel (webhook or e-mail) of one alert, with its attempts; dead after alerting.max_attempts."""

    class Channel(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"

    class Status(models.TextChoices):
        PENDING = "pending"
        RETRYING = "retrying"
        DELIVERED = "delivered"
        DEAD = "dead", "dead (gave up)"

    alert = models.ForeignKey(BudgetAlert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=1000, help_text="Webhook URL or comma-separated addresses.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["alert", "channel"]
        verbose_name_plural = "alert deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="alert_delivery_due")]

    def __str__(self) -> str:
        return f"{self.channel} → {self.target} ({self.status})"
