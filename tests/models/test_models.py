"""Model-layer behaviour that must hold on SQLite, PostgreSQL and MariaDB alike.

scripts/test runs these (marker db_matrix) on all three databases; the migrations they run on
are the project's one migration set, applied by pytest-django when it creates the test database.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.test import override_settings
from django.utils import timezone

from accounts.keys import key_digest, key_display, key_generate, secret_decrypt, secret_encrypt
from accounts.models import (
    Organization,
    OrganizationMembership,
    Project,
    ProjectCredential,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)
from billing.models import SpendLog
from tests.factories import make_key

pytestmark = [pytest.mark.db_matrix, pytest.mark.django_db]


# --------------------------------------------------------------------------- keys

def test_key_digest_is_hmac_sha256_under_the_application_secret():
    plaintext = key_generate()
    expected = hmac.new(settings.SECRET_KEY.encode(), plaintext.encode(), hashlib.sha256).hexdigest()
    assert key_digest(plaintext) == expected
    assert key_digest(plaintext, secret="another-application-secret") != expected
    assert len(expected) == 64


def test_generated_keys_are_unique_and_displayed_by_their_last_characters():
    keys = {key_generate() for _ in range(200)}
    assert len(keys) == 200
    plaintext = next(iter(keys))
    assert plaintext.startswith("sk-") and len(plaintext) >= 32
    assert key_display(plaintext) == f"sk-…{plaintext[-4:]}"


def test_key_is_found_by_digest_and_no_column_holds_the_plaintext():
    plaintext, key = make_key(key_alias="ci")
    assert VirtualKey.objects.get(key_hash=key_digest(plaintext)).pk == key.pk
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {VirtualKey._meta.db_table} WHERE id = %s", [key.pk])
        row = cursor.fetchone()
    assert not any(plaintext in str(value) for value in row)


def test_key_digest_is_unique():
    plaintext, _ = make_key()
    with pytest.raises(IntegrityError), transaction.atomic():
        VirtualKey.objects.create(key_hash=key_digest(plaintext), display=key_display(plaintext))


# --------------------------------------------------------------------------- project credentials

def test_project_credential_round_trips_encrypted():
    organization = Organization.objects.create(name="acme")
    project = Project.objects.create(name="search", organization=organization)
    api_key = "sk-proj-provider-" + "x" * 40
    ProjectCredential.objects.create(project=project, provider="openai", encrypted_api_key=secret_encrypt(api_key),
                                     display=api_key[-4:])
    stored = ProjectCredential.objects.get(project=project, provider="openai")
    assert api_key not in stored.encrypted_api_key
    assert secret_decrypt(stored.encrypted_api_key) == api_key


def test_project_credential_cannot_be_read_under_another_application_secret():
    token = secret_encrypt("sk-provider-secret")
    with override_settings(SECRET_KEY="a-different-application-secret-0123456789"):
        with pytest.raises(ValueError, match="application_secret"):
            secret_decrypt(token)


def test_one_credential_per_project_and_provider():
    project = Project.objects.create(name="p", organization=Organization.objects.create(name="o"))
    ProjectCredential.objects.create(project=project, provider="anthropic", encrypted_api_key=secret_encrypt("a"))
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectCredential.objects.create(project=project, provider="anthropic", encrypted_api_key=secret_encrypt("b"))


# --------------------------------------------------------------------------- constraints

def test_project_needs_a_team_or_an_organization():
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.create(name="orphan")
    organization = Organization.objects.create(name="acme")
    assert Project.objects.create(name="by-org", organization=organization).pk
    assert Project.objects.create(name="by-team", team=Team.objects.create(name="research")).pk


def test_team_membership_is_unique_per_user():
    team = Team.objects.create(name="research")
    user = User.objects.create(username="ada")
    TeamMembership.objects.create(team=team, user=user, role=TeamMembership.TeamRole.ADMIN)
    assert list(team.members.all()) == [user]
    with pytest.raises(IntegrityError), transaction.atomic():
        TeamMembership.objects.create(team=team, user=user)


def test_organization_membership_is_unique_per_user():
    organization = Organization.objects.create(name="acme")
    user = User.objects.create(username="grace")
    OrganizationMembership.objects.create(organization=organization, user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        OrganizationMembership.objects.create(organization=organization, user=user)


def test_team_and_organization_ids_are_unique_and_their_aliases_may_repeat():
    organization = Organization.objects.create(name="acme", public_id="acme")
    first = Team.objects.create(name="research", organization=organization)
    assert Team.objects.create(name="research", organization=organization).public_id != first.public_id
    assert Organization.objects.create(name="acme").public_id != "acme"
    with pytest.raises(IntegrityError), transaction.atomic():
        Team.objects.create(name="other", public_id=first.public_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(public_id="acme")


# --------------------------------------------------------------------------- money

def test_budgets_keep_decimal_precision():
    key = make_key(max_budget=Decimal("12.34567891"), soft_budget=Decimal("0.00000001")).row
    key.refresh_from_db()
    assert key.max_budget == Decimal("12.34567891") and isinstance(key.max_budget, Decimal)
    assert key.soft_budget == Decimal("0.00000001")


def test_spend_adds_up_exactly():
    """Ten thousand tiny costs sum to exactly their decimal total.

    PostgreSQL and MariaDB add NUMERIC exactly. SQLite has no decimal type: Django stores the
    column with REAL affinity and SUM() runs in floating point, so on SQLite a SQL-side sum is
    exact only once quantized to the field's eight places; code summing money in SQL must
    quantize (see docs/spend.md).
    """
    key = make_key().row
    now = timezone.now()
    cost = Decimal("0.00000123")
    SpendLog.objects.bulk_create([
        SpendLog(request_id=f"req-{i}", key=key, model="gpt-4o", cost=cost, started_at=now,
                 ended_at=now + timedelta(milliseconds=5))
        for i in range(10_000)
    ], batch_size=1000)
    total = SpendLog.objects.filter(key=key).aggregate(total=Sum("cost"))["total"]
    if connection.vendor == "sqlite":
        total = total.quantize(Decimal("0.00000001"))
    assert total == Decimal("0.01230000")
    VirtualKey.objects.filter(pk=key.pk).update(spend=F("spend") + total)
    VirtualKey.objects.filter(pk=key.pk).update(spend=F("spend") + cost)
    key.refresh_from_db()
    assert key.spend == Decimal("0.01230123")


def test_spend_log_request_id_is_unique():
    now = timezone.now()
    SpendLog.objects.create(request_id="req-1", model="gpt-4o", started_at=now, ended_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        SpendLog.objects.create(request_id="req-1", model="gpt-4o", started_at=now, ended_at=now)


# --------------------------------------------------------------------------- migrations

def test_text_round_trips_as_utf8mb4():
    """MySQL needs utf8mb4 for characters outside the BMP, such as emoji in aliases."""
    key = make_key(key_alias="team 🚀 ключ").row
    key.refresh_from_db()
    assert key.key_alias == "team 🚀 ключ"
