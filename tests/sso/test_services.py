"""The device-flow services on every database (SQLite, PostgreSQL, MariaDB): the model, its migration, the states."""
from __future__ import annotations

import pytest
from django.utils import timezone

from accounts import policy, services
from accounts.keys import key_digest
from accounts.models import DeviceAuthorization, VirtualKey
from accounts.policy import Actor
from accounts.services import DeviceFlowError

pytestmark = [pytest.mark.db_matrix, pytest.mark.django_db]


def error_of(device_code: str) -> str:
    with pytest.raises(DeviceFlowError) as caught:
        services.device_token(device_code=device_code)
    return caught.value.error


def test_a_sign_in_goes_from_pending_to_an_issued_key_owned_by_the_approver(flow, world):
    codes = services.device_authorization_create(client_id="aider", scope="gpt-4o", client_address="10.0.0.7")
    assert error_of(codes.device_code) == "authorization_pending"
    actor = Actor.for_user(world.users["teamadmin"], "sso")
    scope = policy.agent_key_scope(actor, f"team:{world.team_a.pk}")
    key = services.device_approve(by=actor, authorization=codes.authorization, owners=scope.owners)
    assert key.key_hash != "" and (key.user, key.team) == (world.users["teamadmin"], world.team_a)
    DeviceAuthorization.objects.filter(pk=codes.authorization.pk).update(last_polled_at=None)
    issued = services.device_token(device_code=codes.device_code)
    assert VirtualKey.objects.get(key_hash=key_digest(issued.plaintext)).pk == key.pk
    row = DeviceAuthorization.objects.get(pk=codes.authorization.pk)
    assert (row.status, row.decided_by, row.key_id) == ("issued", world.users["teamadmin"], key.pk)
    assert row.issued_at is not None and row.issued_at <= timezone.now()
    assert error_of(codes.device_code) == "invalid_grant"


def test_denied_and_expired_sign_ins_answer_their_errors(flow, world):
    denied = services.device_authorization_create(client_id="cli")
    services.device_deny(by=Actor.for_user(world.users["member"], "sso"), authorization=denied.authorization)
    assert error_of(denied.device_code) == "access_denied"
    expired = services.device_authorization_create(client_id="cli")
    DeviceAuthorization.objects.filter(pk=expired.authorization.pk).update(expires_at=timezone.now())
    assert error_of(expired.device_code) == "expired_token"


def test_the_scopes_offered_follow_the_key_policy(flow, world):
    values = {s.value for s in policy.agent_key_scopes(Actor.for_user(world.users["member"], "sso"))}
    assert values == {"personal", f"team:{world.team_a.pk}"}
    assert policy.agent_key_scopes(Actor.for_user(world.users["viewer"], "sso")) == []
    org_admin = {s.value for s in policy.agent_key_scopes(Actor.for_user(world.users["orgadmin"], "sso"))}
    assert {f"team:{world.team_a.pk}", f"organization:{world.org1.pk}"} <= org_admin
    assert f"team:{world.team_b.pk}" not in org_admin
