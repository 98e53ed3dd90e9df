"""python manage.py generate_key: the key is the last line of stdout; bad arguments are one line and exit 2."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import services
from accounts.keys import key_digest
from accounts.models import TeamMembership, VirtualKey
from accounts.policy import Actor

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_prints_the_key_last_and_stores_only_its_digest():
    by = Actor.system("t")
    user = services.user_create(by=by, username="ana")
    team = services.team_create(by=by, name="search", max_budget=100)
    TeamMembership.objects.create(team=team, user=user)
    out = io.StringIO()
    call_command("generate_key", "--alias", "ci", "--user", "ana", "--team", "search", "--models", "gpt-4o,gpt-4o-mini",
                 "--max-budget", "12.5", "--budget-duration", "30d", "--rpm", "60", "--tpm", "10000",
                 "--expires", "7d", stdout=out)
    lines = out.getvalue().strip().splitlines()
    plaintext = lines[-1]
    assert plaintext.startswith("sk-") and " " not in plaintext
    key = VirtualKey.objects.get()
    assert key.key_hash == key_digest(plaintext) and key.key_alias == "ci" and key.user == user
    assert key.team == team and key.allowed_models == ["gpt-4o", "gpt-4o-mini"]
    assert (str(key.max_budget), key.budget_duration, key.rpm_limit, key.tpm_limit) == ("12.50000000", "30d", 60,
                                                                                        10000)
    assert key.expires_at is not None
    assert plaintext not in "".join(lines[:-1])


@pytest.mark.django_db
@pytest.mark.parametrize("args, flag", [
    (["--rpm", "many"], "--rpm"), (["--max-budget", "-3"], "--max-budget"),
    (["--budget-duration", "fortnight"], "--budget-duration"), (["--expires", "someday"], "--expires"),
    (["--user", "ghost"], "--user"), (["--team", "nope"], "--team"),
])
def test_bad_values_are_one_clear_error_with_exit_status_2(args, flag):
    with pytest.raises(CommandError) as exc:
        call_command("generate_key", *args, stdout=io.StringIO())
    assert exc.value.returncode == 2 and str(exc.value).startswith(flag)
    assert VirtualKey.objects.count() == 0


@pytest.mark.parametrize("args, expected", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--rpm", "x"], "--rpm: rpm_limit must be a whole number"),
])
def test_command_line_errors_are_one_line_exit_2_no_traceback(tmp_path, args, expected):
    env = {**os.environ, "LLMUR_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    env.pop("REDIS_URL", None)
    result = subprocess.run([sys.executable, "manage.py", "generate_key", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout and result.stdout == ""
