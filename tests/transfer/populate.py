"""Fill the current database (DATABASE_URL) with representative rows of every llmur model; print facts as JSON.

Run as a subprocess by test_transfer_database.py, so it works on its own database, never on
pytest-django's. The JSON carries what the test checks on the target afterwards.
"""
from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")

import django  # noqa: E402

django.setup()

from django.contrib.admin.models import ADDITION, LogEntry  # noqa: E402
from django.contrib.auth.models import Group, Permission  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.keys import key_digest, key_display, key_generate, secret_encrypt  # noqa: E402
from accounts.models import (  # noqa: E402
    Organization, OrganizationMembership, Project, ProjectCredential, Role, Team, TeamMembership, User, VirtualKey,
)
from billing.models import DailySpend, ModelPrice, SpendLog  # noqa: E402
from gateway.models import ModelDeployment  # noqa: E402

SPEND_ROWS = int(os.environ.get("POPULATE_SPEND_ROWS", "1200"))

now = timezone.now().replace(microsecond=123456)
org = Organization.objects.create(name="Acme", max_budget=Decimal("1000.5"), budget_duration="30d",
                                  allowed_models=["gpt-4o", "claude-sonnet"], metadata={"tier": "gold", "ñ": "ü"})
admin = User.objects.create_superuser("admin", "admin@example.com", "correct horse battery staple",
                                      role=Role.PROXY_ADMIN)
alice = User.objects.create_user("alice", "alice@example.com", "alice-password-1", max_budget=Decimal("10"),
                                 rpm_limit=60)
OrganizationMembership.objects.create(organization=org, user=alice, role="org_admin")
team = Team.objects.create(organization=org, name="Search", tpm_limit=100000, spend=Decimal("12.34567891"),
                           budget_reset_at=now + timedelta(days=3))
TeamMembership.objects.create(team=team, user=alice, role="admin")
project = Project.objects.create(team=team, name="ranker", metadata={"cost_center": 42})
ProjectCredential.objects.create(project=project, provider="openai", encrypted_api_key=secret_encrypt("sk-upstream-1"),
                                 display="…ream-1")
plaintext = key_generate()
key = VirtualKey.objects.create(key_hash=key_digest(plaintext), display=key_display(plaintext), key_alias="ci-bot",
                                user=alice, team=team, project=project, organization=org,
                                allowed_models=["gpt-4o"], expires_at=now + timedelta(days=30),
                                max_parallel_requests=4, metadata={"env": "ci"}, last_used_at=now)
VirtualKey.objects.filter(pk=key.pk).update(created_at=now - timedelta(days=7))  # an old key, to see it preserved
group = Group.objects.create(name="operators")
group.permissions.add(Permission.objects.get(codename="view_virtualkey"))
alice.groups.add(group)
alice.user_permissions.add(Permission.objects.get(codename="change_team"))
ModelDeployment.objects.create(deployment_id="gpt-4o-east", model_name="gpt-4o", provider="openai",
                               litellm_params={"model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"},
                               model_info={"region": "east"})
ModelPrice.objects.update_or_create(model="in-house-llm", defaults={
    "provider": "ollama", "input_cost_per_token": Decimal("0.000000123456"),
    "output_cost_per_token": Decimal("0.000000654321")})

logs, total_cost, total_tokens = [], Decimal(0), 0
for i in range(SPEND_ROWS):
    cost = Decimal(i % 997) * Decimal("0.00001234") + Decimal("0.00000001")
    tokens = 10 + i % 50
    total_cost += cost
    total_tokens += tokens
    started = now - timedelta(minutes=i)
    logs.append(SpendLog(request_id=f"req-{i:06d}", key=key if i % 3 else None, user=alice, team=team, project=project,
                         organization=org, key_display=key.display, model="gpt-4o", deployment="gpt-4o-east",
                         provider="openai", prompt_tokens=tokens - 5, completion_tokens=5, total_tokens=tokens,
                         cost=cost, status="success" if i % 10 else "failure", http_status=200 if i % 10 else 502,
                         latency_ms=100 + i, ttft_ms=None if i % 2 else 40, started_at=started,
                         ended_at=started + timedelta(milliseconds=100 + i), cache_hit=i % 7 == 0, stream=i % 2 == 0,
                         metadata={"i": i}))
SpendLog.objects.bulk_create(logs, batch_size=500)
daily_cost = Decimal(0)
for day in range(3):
    cost = Decimal("1.23456789") * (day + 1)
    daily_cost += cost
    DailySpend.objects.create(day=(now - timedelta(days=day)).date(), key=key, user=alice, team=team, project=project,
                              organization=org, model="gpt-4o", prompt_tokens=1000 * day, completion_tokens=10,
                              cost=cost, requests=5, failed_requests=1, cache_hits=day)
LogEntry.objects.log_actions(user_id=admin.pk, queryset=[team], action_flag=ADDITION, change_message="created")
session = SessionStore()
session["_auth_user_id"] = str(admin.pk)
session.create()

print(json.dumps({
    "plaintext_key": plaintext,
    "key_created_at": VirtualKey.objects.get(pk=key.pk).created_at.isoformat(),
    "spend_rows": SPEND_ROWS,
    "spend_cost": str(total_cost),
    "spend_tokens": total_tokens,
    "daily_cost": str(daily_cost),
    "content_types": ContentType.objects.count(),
}))
