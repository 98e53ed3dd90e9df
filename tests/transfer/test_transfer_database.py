"""`manage.py transfer_database --to URL`: a populated SQLite database moved to empty PostgreSQL and MariaDB.

Every step runs as its own manage.py / script process with its own DATABASE_URL, so nothing here
touches pytest-django's test database. All processes share one LLMUR_VAR_DIR, hence one generated
application secret: key digests and encrypted credentials must still work on the target.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.deploy.scratch import query, scratch_database

HERE = Path(__file__).resolve().parent
# Every table a user needs after the move, checked directly in SQL on both sides.
KEY_TABLES = ["accounts_user", "accounts_organization", "accounts_organizationmembership", "accounts_team",
              "accounts_teammembership", "accounts_project", "accounts_projectcredential", "accounts_virtualkey",
              "accounts_user_groups", "accounts_user_user_permissions", "auth_group", "auth_group_permissions",
              "auth_permission", "django_content_type", "django_admin_log", "django_session",
              "billing_modelprice", "billing_spendlog", "billing_dailyspend", "gateway_modeldeployment"]


def _env(var_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LLMUR_", "DATABASE_", "REDIS_", "LITELLM_", "DJANGO_"))}
    env.update(LLMUR_VAR_DIR=str(var_dir), DATABASE_URL=database_url, PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(args: list[str], var_dir: Path, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=_env(var_dir, database_url), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _transfer(source: dict, to: str, *extra: str) -> subprocess.CompletedProcess:
    return _run(["manage.py", "transfer_database", "--to", to, *extra], source["var_dir"], source["url"])


def _counts(url: str) -> dict[str, int]:
    return {table: query(url, f"SELECT COUNT(*) FROM {table}")[0][0] for table in KEY_TABLES}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """An embedded-style SQLite database with representative rows of every model."""
    var_dir = tmp_path_factory.mktemp("transfer-var")
    url = f"sqlite:///{var_dir}/llmur.sqlite3"
    migrated = _run(["manage.py", "migrate", "--noinput", "-v0"], var_dir, url)
    assert migrated.returncode == 0, migrated.stderr
    populated = _run([str(HERE / "populate.py")], var_dir, url)
    assert populated.returncode == 0, populated.stderr
    return {"var_dir": var_dir, "url": url, "facts": json.loads(populated.stdout)}


@contextmanager
def _target(engine: str, migrated_postgres) -> Iterator[str]:
    """The PostgreSQL target is one only `migrate` has touched (e.g. by the helm chart's hook Job), which still
    counts as empty: a copy of the migrated test database, as migrating an empty one leaves it. The MariaDB
    target stays truly empty, so both starting points are covered."""
    if engine == "mysql":
        with scratch_database(engine, "transfer") as target:
            yield target
        return
    name = f"llmur_pkg_transfer_{os.getpid()}"
    try:
        yield migrated_postgres(name)
    finally:
        migrated_postgres.drop(name)


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_transfer_from_sqlite_copies_every_row_and_the_target_works(source, engine, migrated_postgres):
    facts = source["facts"]
    with _target(engine, migrated_postgres) as target:
        # A small batch size, so the spend log goes over in several batches.
        result = _transfer(source, target, "--batch-size", "500")
        assert result.returncode == 0, result.stderr
        assert "counts and spend totals match" in result.stdout
        assert "billing_spendlog" in result.stderr  # the progress bar names each table
        assert "@" not in result.stdout + result.stderr.replace("@example.com", "")  # no credentials echoed

        source_counts, target_counts = _counts(source["url"]), _counts(target)
        assert target_counts == source_counts
        assert target_counts["billing_spendlog"] == facts["spend_rows"]
        assert Decimal(str(query(target, "SELECT SUM(cost) FROM billing_spendlog")[0][0])) == Decimal(facts["spend_cost"])
        assert Decimal(str(query(target, "SELECT SUM(cost) FROM billing_dailyspend")[0][0])) == Decimal(facts["daily_cost"])

        used = _run([str(HERE / "inspect_target.py"), facts["plaintext_key"]], source["var_dir"], target)
        assert used.returncode == 0, used.stderr
        seen = json.loads(used.stdout)
        assert (seen["key_alias"], seen["key_team"], seen["key_user"], seen["key_org"]) == ("ci-bot", "Search",
                                                                                           "alice", "Acme")
        assert seen["key_created_at"] == facts["key_created_at"]  # auto_now_add kept, not re-stamped
        assert seen["key_allowed_models"] == ["gpt-4o"]
        assert seen["alice_authenticates"] is True
        assert seen["alice_permissions"] == ["accounts.change_team", "accounts.view_virtualkey"]
        assert seen["credential"] == "sk-upstream-1"
        assert seen["new_org_id_is_fresh"] is True  # sequences continue after the copied ids
        assert (Decimal(seen["spend_cost"]), seen["spend_tokens"]) == (Decimal(facts["spend_cost"]),
                                                                       facts["spend_tokens"])
        assert seen["org_metadata"] == {"tier": "gold", "ñ": "ü"}

        if engine == "postgres":
            # The target now holds data (inspect_target added an organization): refused without --force...
            refused = _transfer(source, target)
            assert refused.returncode == 2
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(
                f"llmur: the target postgres {target.split('@', 1)[1].split('/')[0]}/") and "already holds data" in lines[0]
            assert query(target, "SELECT COUNT(*) FROM accounts_organization")[0][0] == source_counts["accounts_organization"] + 1
            # ...and replaced with it.
            forced = _transfer(source, target, "--force", "-v0")
            assert forced.returncode == 0, forced.stderr
            assert _counts(target) == source_counts


def test_transfer_refuses_a_bad_url_in_one_line(source):
    result = _transfer(source, "ftp://example.com/llmur")
    assert result.returncode == 2
    assert result.stderr.strip() == ("llmur: --to: unknown database URL scheme 'ftp' "
                                     "(expected postgresql://, mysql:// or sqlite:///)")


def test_transfer_refuses_to_copy_a_database_onto_itself(source):
    result = _transfer(source, source["url"])
    assert result.returncode == 2
    assert result.stderr.strip().startswith("llmur: --to names the current database (sqlite ")


def test_transfer_reports_an_unreachable_target_without_its_password(source):
    port = free_port()
    result = _transfer(source, f"postgresql://llmur:hunter2secret@127.0.0.1:{port}/llmur")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"llmur: cannot connect to the target postgres 127.0.0.1:{port}/llmur: ")
    assert "hunter2secret" not in result.stderr + result.stdout


def test_transfer_refuses_an_unmigrated_source(tmp_path):
    empty = {"var_dir": tmp_path, "url": f"sqlite:///{tmp_path}/empty.sqlite3"}
    result = _transfer(empty, f"sqlite:///{tmp_path}/target.sqlite3")
    assert result.returncode == 2
    assert result.stderr.strip() == ("llmur: the current database has unapplied migrations: "
                                     "run `python manage.py migrate` first, then transfer")
