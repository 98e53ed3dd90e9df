"""Per-member budgets in a team (LiteLLM's max_budget_in_team on /team/member_add and /team/member_update),
driven over HTTP as LiteLLM users' scripts do, and enforced at admission per (team, member)."""
from __future__ import annotations

import uuid

import openai
import pytest

from accounts.models import TeamMembership
from tests.compat.conftest import spend_settle

HELLO = [{"role": "user", "content": "hi"}]


def _membership(user_info: dict, team_id: str) -> dict:
    team = next(t for t in user_info["teams"] if t["team_id"] == team_id)
    return team["team_memberships"][0]


def test_a_members_budget_in_a_team_stops_their_team_keys_and_shows_on_user_info(admin, server):
    team = admin.ok("POST", "/team/new", {"team_alias": "budgeted"})["team_id"]
    person = f"member-{uuid.uuid4().hex[:8]}@example.com"
    made = admin.ok("POST", "/user/new", {"user_id": person, "team_id": team, "models": ["mock-gpt"],
                                          "max_budget": 10})
    updated = admin.ok("POST", "/team/member_update", {"team_id": team, "user_id": person,
                                                       "max_budget_in_team": 0.0000001})
    assert updated["max_budget_in_team"] == 0.0000001
    client = openai.OpenAI(api_key=made["key"], base_url=server.url, max_retries=0)
    client.chat.completions.create(model="mock-gpt", messages=HELLO)
    spend_settle(lambda: TeamMembership.objects.get(team__public_id=team, user__username=person).spend > 0)

    info = admin.ok("GET", "/user/info", {"user_id": person})
    membership = _membership(info, team)
    assert membership["spend"] > 0 and membership["litellm_budget_table"]["max_budget"] == 0.0000001
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="mock-gpt", messages=HELLO)
    message = refused.value.body["message"]
    assert message.startswith("Budget has been exceeded! team_member") and person in message
    # The user's own budget (10) is far from spent: a personal key of theirs, in no team, still answers.
    personal = admin.ok("POST", "/key/generate", {"user_id": person, "models": ["mock-gpt"]})
    answer = openai.OpenAI(api_key=personal["key"], base_url=server.url, max_retries=0).chat.completions.create(
        model="mock-gpt", messages=HELLO)
    assert answer.choices


def test_member_add_gives_each_new_member_the_budget(admin):
    team = admin.ok("POST", "/team/new", {"team_alias": "added-with-budget"})["team_id"]
    people = [f"added-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin.ok("POST", "/team/member_add", {"team_id": team, "max_budget_in_team": 2.5,
                                          "member": [{"role": "user", "user_id": p} for p in people]})
    for person in people:
        membership = _membership(admin.ok("GET", "/user/info", {"user_id": person}), team)
        assert membership["litellm_budget_table"] == {"max_budget": 2.5} and membership["spend"] == 0


def test_only_an_admin_of_the_team_sets_members_budgets(admin, as_key):
    """Attacker side: a member raising their own budget in the team is refused; the team's admin may set it."""
    team = admin.ok("POST", "/team/new", {"team_alias": "guarded"})["team_id"]
    member, lead = f"m-{uuid.uuid4().hex[:8]}", f"lead-{uuid.uuid4().hex[:8]}"
    admin.ok("POST", "/team/member_add", {"team_id": team, "max_budget_in_team": 1,
                                          "member": [{"role": "user", "user_id": member},
                                                     {"role": "admin", "user_id": lead}]})
    member_key = as_key(admin.ok("POST", "/key/generate", {"user_id": member})["key"])
    raised = member_key.post("/team/member_update", {"team_id": team, "user_id": member, "max_budget_in_team": 1000})
    assert raised.status_code in (403, 404)
    assert TeamMembership.objects.get(team__public_id=team, user__username=member).max_budget == 1
    lead_key = as_key(admin.ok("POST", "/key/generate", {"user_id": lead})["key"])
    lowered = lead_key.ok("POST", "/team/member_update", {"team_id": team, "user_id": member,
                                                          "max_budget_in_team": 0.5})
    assert lowered["max_budget_in_team"] == 0.5
