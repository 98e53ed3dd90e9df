"""Use the database at DATABASE_URL the way llmur would after a transfer; print what it found as JSON.

Looks a key up by its digest, signs a user in by password, decrypts a provider credential, and
creates new rows (which fails if sequences were not reset after the copy).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import authenticate  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.db.models import Sum  # noqa: E402

from accounts.keys import key_digest, secret_decrypt  # noqa: E402
from accounts.models import Organization, ProjectCredential, VirtualKey  # noqa: E402
from billing.models import SpendLog  # noqa: E402

key = VirtualKey.objects.select_related("team", "user", "organization").get(key_hash=key_digest(sys.argv[1]))
alice = authenticate(username="alice", password="alice-password-1")
new_org = Organization.objects.create(name="Created after the transfer")
spend = SpendLog.objects.aggregate(cost=Sum("cost"), tokens=Sum("total_tokens"))
print(json.dumps({
    "key_alias": key.key_alias,
    "key_team": key.team.name,
    "key_user": key.user.username,
    "key_org": key.organization.name,
    "key_created_at": key.created_at.isoformat(),
    "key_allowed_models": key.allowed_models,
    "alice_authenticates": alice is not None,
    "alice_permissions": sorted(alice.get_all_permissions()) if alice else [],
    "credential": secret_decrypt(ProjectCredential.objects.get().encrypted_api_key),
    "new_org_id_is_fresh": new_org.pk > Organization.objects.exclude(pk=new_org.pk).order_by("-pk")[0].pk,
    "spend_cost": str(spend["cost"]),
    "spend_tokens": spend["tokens"],
    "sessions": Session.objects.count(),
    "org_metadata": Organization.objects.get(name="Acme").metadata,
}))
