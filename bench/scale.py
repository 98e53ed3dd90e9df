"""The records test: millions of SpendLog rows, then time what operators read from them.

Generation runs inside PostgreSQL: every row is computed by `INSERT ... SELECT` over
generate_series, so no row crosses the wire and 10 million rows take minutes, not the quarter
hour a COPY fed row by row from Python needs. Rows are spread the way real traffic is: a thousand
keys under forty teams in five organizations with a heavy head (a few keys make most calls), a
dozen models with skewed popularity, 90 days with more traffic lately, about 2% failures. The
table's plain indexes are dropped during the load and rebuilt from their own definitions after,
as a bulk import would; then DailySpend is rolled up from SpendLog and both tables are analyzed.

Then, against the running llmur: the admin dashboard (logged in as a superuser), /spend/logs with
filters and /global/spend/report, each timed over HTTP. A surface that does not exist yet is
reported as such, not skipped silently.

Run inside the bench's Django environment: python -m bench.scale --rows N  (prints JSON).
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from bench.servers import LlmurServer

DAYS = 90
N_ORGS, TEAMS_PER_ORG, N_USERS, N_KEYS = 5, 8, 200, 1000
# (model, input $/token, output $/token): popularity falls with the position in the list.
MODELS = [("gpt-4o-mini", 1.5e-07, 6e-07), ("gpt-4o", 2.5e-06, 1e-05), ("claude-sonnet-4", 3e-06, 1.5e-05),
          ("gpt-4.1", 2e-06, 8e-06), ("claude-haiku-3.5", 8e-07, 4e-06), ("gemini-2.5-flash", 3e-07, 2.5e-06),
          ("gpt-4.1-mini", 4e-07, 1.6e-06), ("llama-3.3-70b", 5.9e-07, 7.9e-07), ("mistral-large", 2e-06, 6e-06),
          ("o3-mini", 1.1e-06, 4.4e-06), ("text-embedding-3-small", 2e-08, 0.0), ("gemini-2.5-pro", 1.25e-06, 1e-05)]
CHUNK = 1_000_000


# --------------------------------------------------------------------------- generation (inside Django)

def _entities() -> dict:
    """Organizations, teams, users and keys that the synthetic rows name, created through the ORM."""
    from accounts.keys import key_digest, key_display, key_generate
    from accounts.models import Organization, Team, User, VirtualKey

    orgs = Organization.objects.bulk_create([Organization(name=f"scale-org-{i}") for i in range(N_ORGS)])
    teams = Team.objects.bulk_create([Team(name=f"scale-team-{o}-{t}", organization=org)
                                      for o, org in enumerate(orgs) for t in range(TEAMS_PER_ORG)])
    users = User.objects.bulk_create([User(username=f"scale-user-{i}") for i in range(N_USERS)])
    plaintexts = [key_generate() for _ in range(N_KEYS)]
    keys = VirtualKey.objects.bulk_create([
        VirtualKey(key_hash=key_digest(p), display=key_display(p), key_alias=f"scale-key-{i}",
                   team=teams[i % len(teams)], user=users[i % len(users)],
                   organization=teams[i % len(teams)].organization)
        for i, p in enumerate(plaintexts)])
    password = secrets.token_urlsafe(16)
    User.objects.create_superuser(username="bench-admin", email="bench@example.invalid", password=password,
                                  role="proxy_admin")
    hot = keys[0]
    return {"keys": keys, "admin_password": password, "hot_key": plaintexts[0], "hot_key_id": hot.pk,
            "hot_team_id": hot.team_id, "hot_team": hot.team.public_id, "hot_user_id": hot.user_id, "hot_user": hot.user.username}


def _plain_indexes(cursor) -> list[tuple[str, str]]:
    """The SpendLog indexes that back no constraint: safe to drop and rebuild from their definitions."""
    cursor.execute("""
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.tablename = 'billing_spendlog' AND i.schemaname = current_schema()
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.indexname))::regclass)
    """)
    return cursor.fetchall()


# Synthetic rows are history: their cost is already in the owners' spend and in DailySpend (the
# rollup below), so the billing worker must neither book nor roll them up again.
HISTORICAL = {"booked": True, "rolled_up": True}


def _with_extra_columns(sql: str, model, params: dict) -> str:
    """Fill the columns this module does not name (added to the model later) with their defaults.

    A new NOT NULL column without a default stops the run with a message naming it, rather than
    inserting rows the application would not write.
    """
    from django.db import connection

    named = set(re.findall(r"[a-z_]+", sql.split("/*EXTRA_COLUMNS*/")[0].split("(", 1)[1]))
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in named:
            continue
        if field.name in HISTORICAL:
            value = HISTORICAL[field.name]
        elif field.has_default():
            value = field.get_db_prep_save(field.get_default(), connection)
        elif field.null:
            continue
        elif field.blank and field.get_internal_type() in ("CharField", "TextField"):
            value = ""      # an optional text the application leaves empty when it has none
        else:
            raise RuntimeError(f"{model.__name__}.{field.name} is NOT NULL without a default: say in "
                               "bench/scale.py what a synthetic row holds there")
        params[f"extra_{field.column}"] = value
        columns.append(field.column)
        values.append(f"%(extra_{field.column})s")
    return (sql.replace("/*EXTRA_COLUMNS*/", "".join(f", {c}" for c in columns))
               .replace("/*EXTRA_VALUES*/", "".join(f", {v}" for v in values)))


def generate(*, rows: int) -> dict:
    from django.db import connection, transaction

    from billing.models import DailySpend, SpendLog

    started = time.monotonic()
    with transaction.atomic():
        ent = _entities()
    entities_s = time.monotonic() - started
    now = datetime.now(timezone.utc)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_keys (idx int PRIMARY KEY, key_id bigint, team_id bigint, "
                       "user_id bigint, org_id bigint, display text)")
        cursor.executemany("INSERT INTO bench_keys VALUES (%s, %s, %s, %s, %s, %s)",
                           [(i, k.pk, k.team_id, k.user_id, k.organization_id, k.display)
                            for i, k in enumerate(ent["keys"])])
        cursor.execute("CREATE TEMP TABLE bench_models (idx int PRIMARY KEY, name text, pin numeric, pout numeric)")
        cursor.executemany("INSERT INTO bench_models VALUES (%s, %s, %s, %s)",
                           [(i, m, pin, pout) for i, (m, pin, pout) in enumerate(MODELS)])
        indexes = _plain_indexes(cursor)
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        load_started = time.monotonic()
        params = {"nkeys": N_KEYS, "nmodels": len(MODELS), "now": now, "days": DAYS, "run": secrets.token_hex(4)}
        insert_sql = _with_extra_columns(INSERT_SQL, SpendLog, params)
        for low in range(1, rows + 1, CHUNK):
            high = min(rows, low + CHUNK - 1)
            cursor.execute(insert_sql, params | {"low": low, "high": high})
            print(f"records: {high:,}/{rows:,} rows", file=sys.stderr, flush=True)
        insert_s = time.monotonic() - load_started
        index_started = time.monotonic()
        for _, definition in indexes:
            cursor.execute(definition)
        index_s = time.monotonic() - index_started
        rollup_started = time.monotonic()
        cursor.execute("DELETE FROM billing_dailyspend")
        rollup_params: dict = {}
        cursor.execute(_with_extra_columns(ROLLUP_SQL, DailySpend, rollup_params), rollup_params)
        rollup_s = time.monotonic() - rollup_started
        cursor.execute("ANALYZE billing_spendlog")
        cursor.execute("ANALYZE billing_dailyspend")
        cursor.execute("SELECT count(*) FROM billing_spendlog")
        total = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM billing_dailyspend")
        daily = cursor.fetchone()[0]
        cursor.execute("SELECT pg_total_relation_size('billing_spendlog')")
        size = cursor.fetchone()[0]
    return {
        "rows": total, "generated_rows": rows, "daily_rows": daily, "days": DAYS, "keys": N_KEYS,
        "teams": N_ORGS * TEAMS_PER_ORG, "models": len(MODELS),
        "generate_s": round(time.monotonic() - started, 1), "entities_s": round(entities_s, 1),
        "insert_s": round(insert_s, 1), "index_rebuild_s": round(index_s, 1), "rollup_s": round(rollup_s, 1),
        "indexes_rebuilt": [name for name, _ in indexes], "table_mb": round(size / 2**20),
        "admin_user": "bench-admin", "admin_password": ent["admin_password"], "hot_key": ent["hot_key"],
        "hot_key_id": ent["hot_key_id"], "hot_team_id": ent["hot_team_id"], "hot_user_id": ent["hot_user_id"],
        "hot_team": ent["hot_team"], "hot_user": ent["hot_user"],
        "hot_model": MODELS[0][0],
    }


# Heavy heads: pow(random(), 3) makes key 0 the busiest; pow(random(), 0.8) leans traffic to recent days.
INSERT_SQL = """
INSERT INTO billing_spendlog (request_id, key_id, user_id, project_id, team_id, organization_id, key_display,
    call_type, model, deployment, provider, prompt_tokens, completion_tokens, total_tokens, cost, status,
    http_status, latency_ms, ttft_ms, started_at, ended_at, cache_hit, stream, end_user, metadata
    /*EXTRA_COLUMNS*/)
SELECT 'scale-' || %(run)s || '-' || r.g, k.key_id, k.user_id, NULL, k.team_id, k.org_id, k.display,
    'chat', m.name, m.name || '-deployment', 'openai', r.pt, r.ct, r.pt + r.ct,
    round(r.pt * m.pin + r.ct * m.pout, 8),
    CASE WHEN r.failed THEN 'failure' ELSE 'success' END, CASE WHEN r.failed THEN 500 ELSE 200 END,
    r.latency, CASE WHEN r.stream THEN r.latency / 4 END, r.ts, r.ts + r.latency * interval '1 millisecond',
    r.cache_hit, r.stream, '', '{}'::jsonb /*EXTRA_VALUES*/
FROM (
    SELECT g,
           floor(pow(random(), 3) * %(nkeys)s)::int AS ki,
           floor(pow(random(), 2) * %(nmodels)s)::int AS mi,
           %(now)s::timestamptz - pow(random(), 0.8) * %(days)s * interval '1 day' AS ts,
           (20 + random() * 2000)::int AS pt,
           (1 + random() * 800)::int AS ct,
           (200 + random() * 3000)::int AS latency,
           random() < 0.02 AS failed,
           random() < 0.05 AS cache_hit,
           random() < 0.4 AS stream
    FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g
) r
JOIN bench_keys k ON k.idx = r.ki
JOIN bench_models m ON m.idx = r.mi
"""

ROLLUP_SQL = """
INSERT INTO billing_dailyspend (day, key_id, user_id, project_id, team_id, organization_id, model,
    prompt_tokens, completion_tokens, cost, requests, failed_requests, cache_hits /*EXTRA_COLUMNS*/)
SELECT (started_at AT TIME ZONE 'UTC')::date, key_id, user_id, project_id, team_id, organization_id, model,
       sum(prompt_tokens), sum(completion_tokens), sum(cost), count(*),
       count(*) FILTER (WHERE status <> 'success'), count(*) FILTER (WHERE cache_hit) /*EXTRA_VALUES*/
FROM billing_spendlog
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


# --------------------------------------------------------------------------- timing (the orchestrator)

def _timed(opener: urllib.request.OpenerDirector, url: str, *, headers: dict, repeat: int = 5) -> dict:
    """GET url repeat times after one warm-up; a first answer slower than 5 s is not repeated."""
    samples: list[float] = []
    status, size = None, None
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=120) as response:
                body = response.read()
                status, size = response.status, len(body)
        except urllib.error.HTTPError as exc:
            body = exc.read()
            status, size = exc.code, len(body)
        except OSError as exc:
            return {"status": None, "note": f"no answer: {exc}"}
        elapsed = (time.perf_counter() - started) * 1000
        if attempt > 0:
            samples.append(elapsed)
        if status >= 400:
            break
        if elapsed > 5000 and attempt >= 1:
            break
    result = {"status": status, "bytes": size}
    if samples:
        result |= {"p50_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1),
                   "runs": len(samples)}
    if status and status >= 400:
        result["note"] = f"HTTP {status}: {body[:160].decode(errors='replace')}"
    return result


def _admin_session(base: str, user: str, password: str) -> tuple[urllib.request.OpenerDirector, str | None]:
    """A cookie-carrying opener logged in to the Django admin, or the reason it could not log in."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = f"{base}/admin/login/?next=/admin/"
    try:
        page = opener.open(login, timeout=30).read().decode(errors="replace")
    except OSError as exc:
        return opener, f"admin login page unreachable: {exc}"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not token:
        return opener, "admin login page has no CSRF token"
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "username": user, "password": password,
                                   "next": "/admin/"}).encode()
    request = urllib.request.Request(login, data=data, headers={"Referer": login})
    try:
        opener.open(request, timeout=30).read()
    except OSError as exc:
        return opener, f"admin login failed: {exc}"
    if not any(cookie.name == "sessionid" for cookie in jar):
        return opener, "admin login refused the bench superuser"
    return opener, None


def time_surfaces(*, base: str, master_key: str, facts: dict, repeat: int = 5) -> list[dict]:
    today = datetime.now(timezone.utc).date()
    week = (today - timedelta(days=7)).isoformat()
    quarter = (today - timedelta(days=90)).isoformat()
    month = (today - timedelta(days=30)).isoformat()
    end = (today + timedelta(days=1)).isoformat()
    auth = {"Authorization": f"Bearer {master_key}"}
    api = urllib.request.build_opener()
    q = urllib.parse.urlencode
    checks = [
        ("/spend/logs last 7 days", f"/spend/logs?{q({'start_date': week, 'end_date': end})}"),
        ("/spend/logs key (busiest), 30 days",
         f"/spend/logs?{q({'api_key': facts['hot_key'], 'start_date': month, 'end_date': end})}"),
        ("/spend/logs team, 30 days",
         f"/spend/logs?{q({'team_id': facts['hot_team'], 'start_date': month, 'end_date': end})}"),
        ("/spend/logs user, 30 days",
         f"/spend/logs?{q({'user_id': facts['hot_user'], 'start_date': month, 'end_date': end})}"),
        ("/spend/logs model, 7 days",
         f"/spend/logs?{q({'model': facts['hot_model'], 'start_date': week, 'end_date': end})}"),
        ("/global/spend/report by team, 90 days",
         f"/global/spend/report?{q({'start_date': quarter, 'end_date': end, 'group_by': 'team'})}"),
        ("/global/spend/report by key, 30 days",
         f"/global/spend/report?{q({'start_date': month, 'end_date': end, 'group_by': 'api_key'})}"),
        ("/global/spend/report by model, 30 days",
         f"/global/spend/report?{q({'start_date': month, 'end_date': end, 'group_by': 'model'})}"),
        ("/global/spend/report by day, 90 days",
         f"/global/spend/report?{q({'start_date': quarter, 'end_date': end, 'group_by': 'day'})}"),
    ]
    # The recorded path never carries the key itself, even a throwaway one.
    timings = [{"name": name, "path": path.replace(facts["hot_key"], "sk-REDACTED")}
               | _timed(api, base + path, headers=auth, repeat=repeat) for name, path in checks]
    admin, problem = _admin_session(base, facts["admin_user"], facts["admin_password"])
    for name, path in (("admin dashboard /admin/", "/admin/"),
                       ("admin SpendLog list", "/admin/billing/spendlog/"),
                       ("admin DailySpend list", "/admin/billing/dailyspend/")):
        if problem:
            timings.append({"name": name, "path": path, "status": None, "note": problem})
        else:
            timings.append({"name": name, "path": path} | _timed(admin, base + path, headers={}, repeat=repeat))
    return timings


def run(*, server: "LlmurServer", rows: int, log: Callable[[str], None], repeat: int = 5) -> dict:
    """Generate `rows` synthetic rows in the running llmur's database and time the reporting surfaces."""
    from bench.procs import ROOT, BenchError

    completed = subprocess.run([sys.executable, "-m", "bench.scale", "--rows", str(rows)], env=server.env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=None, text=True, timeout=7200)
    if completed.returncode != 0:
        raise BenchError(f"generating {rows:,} SpendLog rows failed (exit {completed.returncode}); see above")
    facts = json.loads(completed.stdout.strip().splitlines()[-1])
    log(f"records: {facts['rows']:,} rows in {facts['generate_s']} s; timing the reporting surfaces")
    timings = time_surfaces(base=server.url, master_key=server.master_key, facts=facts, repeat=repeat)
    public = {k: v for k, v in facts.items() if k not in ("admin_password", "hot_key")}
    return public | {"timings": timings}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description="Generate synthetic SpendLog rows.")
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be 1 or more")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
    import django

    django.setup()
    print(json.dumps(generate(rows=args.rows)))


if __name__ == "__main__":
    main()
