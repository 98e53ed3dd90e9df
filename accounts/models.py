"""Who may call: organizations, teams, users, projects and their virtual keys."""
from __future__ import annotations

import uuid
from decimal import Decimal

from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from accounts.durations import BUDGET_DURATION

MONEY = {"max_digits": 18, "decimal_places": 8}


# Cross-session memory (docs/memory.md): the team's, the project's and the key's blocks are merged
# in that order over the config's memory: block when the key is loaded (gateway/memory/settings.py).
MEMORY_HELP = ('Cross-session memory, e.g. {"enabled": true, "summarizer_model": "gpt-4o-mini", '
               '"max_injected_tokens": 1000, "idle_minutes": 30, "retention_days": 30}; empty: the config\'s.')


class Role(models.TextChoices):
    PROXY_ADMIN = "proxy_admin", "Proxy admin"
    ORG_ADMIN = "org_admin", "Organization admin"
    TEAM_ADMIN = "team_admin", "Team admin"
    INTERNAL_USER = "internal_user", "Internal user"
    VIEWER = "internal_user_viewer", "Viewer"


class Budgeted(models.Model):
    """Budget and rate-limit fields shared by every entity that can be capped."""

    max_budget = models.DecimalField(**MONEY, null=True, blank=True, validators=[MinValueValidator(0)])
    soft_budget = models.DecimalField(**MONEY, null=True, blank=True, validators=[MinValueValidator(0)])
    budget_duration = models.CharField(max_length=16, blank=True, validators=[BUDGET_DURATION],
                                       help_text="Reset period: 30s, 30m, 1h, 1d, 7d, 30d. Empty: never resets.")
    budget_reset_at = models.DateTimeField(null=True, blank=True)
    spend = models.DecimalField(**MONEY, default=Decimal(0),
                                help_text="Spend in the current budget period, settled from SpendLog.")
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


def public_id_new() -> str:
    """A generated public id (team_id / organization_id) when the client chose none, as LiteLLM does."""
    return str(uuid.uuid4())


# The public id the API speaks (LiteLLM's team_id / organization_id): any string the client chose,
# or a generated UUID. Rows made before it existed carry their primary key as text, so ids handed
# out earlier keep working. Foreign keys still point at the integer primary key.
PUBLIC_ID = {"max_length": 200, "unique": True, "default": public_id_new}


class Budget(models.Model):
    """A shared set of limits (LiteLLM's budget table) that keys, teams, organizations and end users reference.

    It holds limits only: an entity that references it gets its limits copied into its own fields
    (accounts.services.budgets), and its spend stays its own. model_max_budget is stored and shown,
    not enforced.
    """

    budget_id = models.CharField(max_length=200, unique=True, help_text="The id the API speaks; generated when omitted.")
    max_budget = models.DecimalField(**MONEY, null=True, blank=True, validators=[MinValueValidator(0)])
    soft_budget = models.DecimalField(**MONEY, null=True, blank=True, validators=[MinValueValidator(0)])
    budget_duration = models.CharField(max_length=16, blank=True, validators=[BUDGET_DURATION],
                                       help_text="Reset period: 30s, 30m, 1h, 1d, 7d, 30d. Empty: never resets.")
    budget_reset_at = models.DateTimeField(null=True, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)
    model_max_budget = models.JSONField(default=dict, blank=True, help_text="Per-model budgets (stored, not enforced).")
    created_by = models.CharField(max_length=200, blank=True)
    updated_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["budget_id"]

    def __str__(self) -> str:
        return self.budget_id


class Organization(Budgeted):
    """The top of the hierarchy: a company or business unit that owns teams and projects."""

    public_id = models.CharField("organization id", **PUBLIC_ID)
    name = models.CharField("organization alias", max_length=200, blank=True)
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               help_text="Shared budget whose limits this entity takes (copied on change).")
    allowed_models = models.JSONField(default=list, blank=True, help_text="Allowed model names; empty allows all.")
    blocked = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name or self.public_id


class User(AbstractUser, Budgeted):
    """A person (or service account) who owns keys and may sign in to the admin."""

    role = models.CharField(max_length=32, choices=Role.choices, default=Role.INTERNAL_USER)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Allowed model names; empty allows all.")
    metadata = models.JSONField(default=dict, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def is_proxy_admin(self) -> bool:
        return self.is_superuser or self.role == Role.PROXY_ADMIN


class OrganizationMembership(models.Model):
    """A user's role in an organization."""

    class OrgRole(models.TextChoices):
        ADMIN = "org_admin", "Admin"
        MEMBER = "member", "Member"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="organization_memberships")
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="uniq_org_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.get_role_display()})"


class Team(Budgeted):
    """A group of users sharing keys, budgets and an allow-list of models."""

    public_id = models.CharField("team id", **PUBLIC_ID)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="teams")
    name = models.CharField("team alias", max_length=200, blank=True)
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               help_text="Shared budget whose limits this entity takes (copied on change).")
    allowed_models = models.JSONField(default=list, blank=True, help_text="Allowed model names; empty allows all.")
    blocked = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    members = models.ManyToManyField(User, through="TeamMembership", related_name="teams", blank=True)
    # Requested model name → model group, for every key of the team (gateway/aliases.py).
    aliases = models.JSONField(default=dict, blank=True, help_text='e.g. {"fast": "gpt-4o-mini"}')
    log_requests = models.BooleanField(default=False, help_text="Store prompts and answers (redacted) of every "
                                                                "request made with the team's keys.")
    memory = models.JSONField(default=dict, blank=True, help_text=MEMORY_HELP)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name or self.public_id


class TeamMembership(models.Model):
    """A user's role in a team."""

    class TeamRole(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "user", "Member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="team_memberships")
    role = models.CharField(max_length=16, choices=TeamRole.choices, default=TeamRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    # LiteLLM's max_budget_in_team: what this member may spend through the team's keys, beside the
    # key's, the user's and the team's own budgets (enforced at admission like them).
    max_budget = models.DecimalField(**MONEY, null=True, blank=True, validators=[MinValueValidator(0)],
                                     help_text="This member's budget in this team (LiteLLM's max_budget_in_team).")
    spend = models.DecimalField(**MONEY, default=Decimal(0),
                                help_text="Spend of this member's keys of this team, settled from SpendLog.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="uniq_team_member")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.get_role_display()})"


class Project(Budgeted):
    """A unit of work under a team or organization, optionally billing to its own provider account."""

    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="projects")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="projects")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Allowed model names; empty allows all.")
    metadata = models.JSONField(default=dict, blank=True)
    log_requests = models.BooleanField(default=False, help_text="Store prompts and answers (redacted) of every "
                                                                "request made with the project's keys.")
    memory = models.JSONField(default=dict, blank=True, help_text=MEMORY_HELP)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(team__isnull=False) | Q(organization__isnull=False),
                                   name="project_has_owner"),
        ]

    def __str__(self) -> str:
        return self.name


class ProjectCredential(models.Model):
    """A project's own provider API key, encrypted under application_secret; never shown again."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="credentials")
    provider = models.CharField(max_length=32, help_text="openai, azure, anthropic, ollama")
    encrypted_api_key = models.TextField(editable=False)
    display = models.CharField(max_length=32, editable=False, help_text="Last characters, for recognition only.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "provider"], name="uniq_project_provider")]

    def __str__(self) -> str:
        return f"{self.project} / {self.provider} ({self.display})"


class VirtualKey(Budgeted):
    """An API key handed to a caller; stored as an HMAC-SHA256 digest, never in plaintext."""

    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    display = models.CharField(max_length=32, editable=False, help_text="Recognizable form, e.g. sk-…a1b2.")
    key_alias = models.CharField(max_length=200, blank=True)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="keys")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="keys")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="keys")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="keys")
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               help_text="Shared budget whose limits this entity takes (copied on change).")
    allowed_models = models.JSONField(default=list, blank=True, help_text="Allowed model names; empty allows all.")
    expires_at = models.DateTimeField(null=True, blank=True)
    blocked = models.BooleanField(default=False)
    metadata = models.JSONField(default=dict, blank=True)
    # Requested model name → model group; wins over the team's aliases (gateway/aliases.py).
    aliases = models.JSONField(default=dict, blank=True, help_text='e.g. {"fast": "gpt-4o-mini"}')
    log_requests = models.BooleanField(default=False, help_text="Store prompts and answers (redacted) of every "
                                                                "request made with this key.")
    memory = models.JSONField(default=dict, blank=True, help_text=MEMORY_HELP)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "virtual key"
        indexes = [
            models.Index(fields=["team", "-created_at"], name="key_team_created"),
            models.Index(fields=["user", "-created_at"], name="key_user_created"),
            models.Index(fields=["key_alias"], name="key_alias"),
        ]

    def __str__(self) -> str:
        return self.key_alias or self.display


class EndUser(Budgeted):
    """A customer of the caller, named by the `user` field of a request (LiteLLM's end user / customer).

    Not a principal: it authenticates nothing. Its blocked flag and limits apply to every request that
    names it, whatever the key; its spend is what those requests cost. Rows are made by /end_user/new
    or by the spend writer the first time a request names it.
    """

    class Region(models.TextChoices):
        EU = "eu", "EU"
        US = "us", "US"

    user_id = models.CharField(max_length=200, unique=True, help_text="The `user` value requests send.")
    alias = models.CharField(max_length=200, blank=True)
    blocked = models.BooleanField(default=False)
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.SET_NULL, related_name="end_users",
                               help_text="Shared budget whose limits this end user takes (copied on change).")
    allowed_model_region = models.CharField(max_length=8, choices=Region.choices, blank=True,
                                            help_text="Only deployments whose litellm_params.region_name is this region serve it.")
    default_model = models.CharField(max_length=200, blank=True,
                                     help_text="Serves its requests when the model has no deployment in its region.")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id"]
        verbose_name = "end user"

    def __str__(self) -> str:
        return self.user_id


class AuditEntry(models.Model):
    """One create, update or delete made through the API, the admin or a command: who, what, when, before/after.

    Rows are written by accounts.audit and never edited; snapshots have secrets masked before they are stored.
    """

    class Source(models.TextChoices):
        API = "api", "Management API"
        ADMIN = "admin", "Admin"
        COMMAND = "command", "Command"
        SSO = "sso", "Single sign-on"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=200, help_text="Who: master key, user name, or key display form.")
    actor_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   db_constraint=False)
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=32, help_text="create, update, delete, block, unblock, regenerate, ...")
    entity_type = models.CharField(max_length=64)
    entity_id = models.CharField(max_length=64)
    entity_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["entity_type", "entity_id"], name="audit_entity")]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.entity_type} {self.entity_repr or self.entity_id}"


class DeviceAuthorization(models.Model):
    """An agent's sign-in through the device flow (RFC 8628): pending until a person approves or denies it.

    Both codes are stored as HMAC digests. Approving issues the key at once, with a secret nobody
    holds; the agent's next poll gives it a fresh secret, shown in that answer only (ISSUED).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a person"
        APPROVED = "approved", "Approved, not yet collected"
        DENIED = "denied", "Denied"
        ISSUED = "issued", "Key issued"
        REVOKED = "revoked", "Key revoked"

    device_code_hash = models.CharField(max_length=64, unique=True, editable=False)
    user_code_hash = models.CharField(max_length=64, editable=False)
    client_id = models.CharField("agent", max_length=100, help_text="The name the agent gave for itself.")
    scope = models.CharField(max_length=1000, blank=True, help_text="Models the agent asked for; empty: any.")
    client_address = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    interval = models.PositiveIntegerField(help_text="Seconds the agent must wait between polls.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_polled_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    key = models.OneToOneField(VirtualKey, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="device_authorization")
    issued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "agent sign-in"
        indexes = [models.Index(fields=["user_code_hash", "status"], name="device_user_code"),
                   models.Index(fields=["status", "expires_at"], name="device_status_expiry")]

    def __str__(self) -> str:
        return f"{self.client_id} ({self.get_status_display().lower()})"
