"""Prepare the bench database the way an operator would, and hand back a virtual key.

Runs inside Django (the run's LLMUR_CONFIGURATION, DATABASE_URL and REDIS_URL are in the
environment): migrates, mirrors the config's deployments, prices the bench model, and creates an
organization, a team, a user and a virtual key under them, each with generous but real budgets
and rate limits, so every request takes the full admission path (limits and budget checks on).

Run: python -m bench.seed   -> prints {"key": "sk-...", "key_id": N} on stdout.
"""
from __future__ import annotations

import io
import json
import os
from decimal import Decimal

# Generous limits: high enough that a benchmark never hits them, real enough that they are checked.
LIMITS = {"rpm_limit": 100_000_000, "tpm_limit": 2_000_000_000, "max_budget": Decimal("1000000")}
PRICE_IN, PRICE_OUT = Decimal("0.0000025"), Decimal("0.00001")


def seed(*, upstream_models: list[str]) -> dict:
    from django.db import transaction

    from accounts.keys import key_digest
    from accounts.models import Organization, Team, User, VirtualKey
    from billing.models import ModelPrice
    from llmur import startup

    startup.prepare(migrate_now=True)
    with transaction.atomic():
        for model in upstream_models:
            ModelPrice.objects.update_or_create(model=model, defaults={
                "provider": "openai", "input_cost_per_token": PRICE_IN, "output_cost_per_token": PRICE_OUT})
        org = Organization.objects.create(name="bench-org", **LIMITS)
        team = Team.objects.create(name="bench-team", organization=org, **LIMITS)
        user = User.objects.create(username="bench-user", **LIMITS)
    plaintext = _generate_key(team=team, user=user)
    key = VirtualKey.objects.get(key_hash=key_digest(plaintext))
    return {"key": plaintext, "key_id": key.pk, "via": "generate_key" if key.key_alias == "bench" else "orm"}


def _generate_key(*, team, user) -> str:
    """The key an operator would issue: `manage.py generate_key`, or the ORM where it does not exist yet."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from accounts.keys import key_digest, key_display, key_generate
    from accounts.models import VirtualKey

    out = io.StringIO()
    try:
        call_command("generate_key", "--alias", "bench", "--team", team.public_id, "--user", user.username,
                     "--max-budget", str(LIMITS["max_budget"]), "--rpm", str(LIMITS["rpm_limit"]),
                     "--tpm", str(LIMITS["tpm_limit"]), stdout=out)
        return out.getvalue().strip().splitlines()[-1].strip()
    except CommandError as exc:
        if "Unknown command" not in str(exc):
            raise
    plaintext = key_generate()
    VirtualKey.objects.create(key_hash=key_digest(plaintext), display=key_display(plaintext), key_alias="bench-orm",
                              user=user, team=team, organization=team.organization, **LIMITS)
    return plaintext


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
    import django

    django.setup()
    models = [m for m in os.environ.get("BENCH_UPSTREAM_MODELS", "").split(",") if m]
    print(json.dumps(seed(upstream_models=models)))


if __name__ == "__main__":
    main()
