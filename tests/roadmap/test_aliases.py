"""Model aliases through the real server and the openai SDK: global, team and key aliases."""
from __future__ import annotations

import openai
import pytest

from tests.conftest import start_gateway
from tests.factories import make_key

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def server(django_db_setup, fake_provider):
    v1 = f"{fake_provider.url}/v1"
    # The mock echoes the upstream model name, so each answer says which group served it.
    config = {
        "model_list": [
            {"model_name": "mock-gpt", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1}},
            {"model_name": "other", "litellm_params": {"model": "openai/mock-slow-1", "api_base": v1}},
        ],
        "litellm_settings": {"model_alias_map": {"gpt-4": "mock-gpt"}},
        "router_settings": {"num_retries": 0, "model_group_alias": {
            "gpt-4o": "other", "secret-gpt": {"model": "mock-gpt", "hidden": True}}},
    }
    gateway = start_gateway(config)
    yield gateway
    gateway.stop()


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_openai_sdk_calling_a_global_alias_gets_the_aliased_models_answer(server):
    key, _ = make_key(key_alias="alias-user")
    client = sdk(server, key)
    assert client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=2).model == "mock-gpt"
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=2).model == "mock-slow-1"
    # Hidden aliases resolve but are not listed.
    assert client.chat.completions.create(model="secret-gpt", messages=HELLO, max_tokens=2).model == "mock-gpt"
    stream = client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=2, stream=True)
    assert {chunk.model for chunk in stream} == {"mock-gpt"}
    listed = [m.id for m in client.models.list()]
    assert listed == ["mock-gpt", "other", "gpt-4", "gpt-4o"]
    assert client.models.retrieve("gpt-4").id == "gpt-4"


def test_key_without_access_to_the_target_cannot_use_the_alias(server):
    from billing.models import SpendLog

    key, record = make_key(key_alias="only-other", allowed_models=["other"])
    client = sdk(server, key)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=2)
    assert "not allowed to use model 'mock-gpt'" in refused.value.message
    # The alias of a model it may use works, and /v1/models lists only aliases of usable groups.
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=2).model == "mock-slow-1"
    assert [m.id for m in client.models.list()] == ["other", "gpt-4o"]
    with pytest.raises(openai.AuthenticationError):
        client.models.retrieve("gpt-4")
    # An alias naming the target literally in the allow-list does not widen it either.
    key2, _ = make_key(key_alias="alias-in-list", allowed_models=["gpt-4", "other"])
    with pytest.raises(openai.AuthenticationError):
        sdk(server, key2).chat.completions.create(model="gpt-4", messages=HELLO, max_tokens=2)
    assert not SpendLog.objects.filter(key_id=record.pk, model="mock-gpt").exists()


def test_team_and_key_aliases_resolve_key_first_and_respect_the_team_allow_list(server):
    from accounts.models import Team

    team = Team.objects.create(name="alias-team", aliases={"fast": "other", "smart": "mock-gpt"},
                               allowed_models=["other", "mock-gpt"])
    key, _ = make_key(key_alias="team-key", team=team, aliases={"fast": "mock-gpt"})
    client = sdk(server, key)
    assert client.chat.completions.create(model="fast", messages=HELLO, max_tokens=2).model == "mock-gpt"
    assert client.chat.completions.create(model="smart", messages=HELLO, max_tokens=2).model == "mock-gpt"
    # /v1/models lists the config's aliases, not the key's or team's own (LiteLLM lists model_group_alias only).
    listed = {m.id for m in client.models.list()}
    assert {"gpt-4", "gpt-4o"} <= listed and not {"fast", "smart"} & listed
    # Another team's key does not see this team's aliases.
    other, _ = make_key(key_alias="no-team")
    with pytest.raises(openai.NotFoundError):
        sdk(server, other).chat.completions.create(model="smart", messages=HELLO, max_tokens=2)
    # A team restricted to "other" cannot reach mock-gpt through its own key's alias.
    narrow = Team.objects.create(name="narrow", allowed_models=["other"])
    key3, _ = make_key(key_alias="narrow-key", team=narrow, aliases={"sneaky": "mock-gpt"})
    with pytest.raises(openai.AuthenticationError):
        sdk(server, key3).chat.completions.create(model="sneaky", messages=HELLO, max_tokens=2)


def test_management_api_sets_and_validates_aliases(server):
    import requests

    headers = {"Authorization": f"Bearer {server.master_key}"}
    team = requests.post(f"{server.url}/team/new", json={"team_alias": "api-aliases", "aliases": {"quick": "other"}},
                         headers=headers, timeout=10).json()
    assert team["aliases"] == {"quick": "other"}
    made = requests.post(f"{server.url}/key/generate", json={"team_id": team["team_id"], "aliases": {"q2": "mock-gpt"}},
                         headers=headers, timeout=10).json()
    assert made["aliases"] == {"q2": "mock-gpt"}
    client = sdk(server, made["key"])
    assert client.chat.completions.create(model="quick", messages=HELLO, max_tokens=2).model == "mock-slow-1"
    assert client.chat.completions.create(model="q2", messages=HELLO, max_tokens=2).model == "mock-gpt"
    bad = requests.post(f"{server.url}/key/update", json={"key": made["key"], "aliases": {"x": ""}}, headers=headers,
                        timeout=10)
    assert bad.status_code in (400, 422)
    assert "aliases" in bad.text and made["key"] not in bad.text
    updated = requests.post(f"{server.url}/team/update", json={"team_id": team["team_id"], "aliases": {}},
                            headers=headers, timeout=10).json()
    assert updated["aliases"] == {}
