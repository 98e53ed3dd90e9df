"""/spend/logs on a long ledger: 100-row pages with a cursor, UTC day ranges, LiteLLM's parameters."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from billing.models import SpendLog
from tests.accounts.api.conftest import error_of

DAY = dt.date(2026, 4, 10)


def _log(key, team, when: dt.datetime, model: str = "gpt-4o", request_id: str | None = None) -> SpendLog:
    return SpendLog(request_id=request_id or uuid.uuid4().hex, key=key, team=team, model=model,
                    key_display=key.display, cost=Decimal("0.01"), started_at=when, ended_at=when)


def test_pages_of_100_newest_first_continue_with_the_cursor_without_gaps_or_repeats(world, admin_api):
    noon = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.timezone.utc)
    # 230 rows, ten of them sharing one started_at, so the cursor must also order by id.
    rows = [_log(world.team_a_key, world.team_a, noon - dt.timedelta(seconds=i // 10 if i < 10 else i))
            for i in range(230)]
    SpendLog.objects.bulk_create(rows)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"cursor": cursor} if cursor else {}
        response = admin_api.get("/spend/logs", **params)
        assert response.status_code == 200
        page = response.json()
        pages += 1
        seen += [r["request_id"] for r in page]
        cursor = response.headers.get("x-next-cursor")
        if not cursor:
            assert len(page) == 30
            break
        assert len(page) == 100
    assert pages == 3
    expected = list(SpendLog.objects.order_by("-started_at", "-id").values_list("request_id", flat=True))
    assert seen == expected


def test_limit_is_honoured_and_capped(world, admin_api):
    noon = dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.timezone.utc)
    SpendLog.objects.bulk_create([_log(world.team_a_key, world.team_a, noon - dt.timedelta(minutes=i))
                                  for i in range(12)])
    response = admin_api.get("/spend/logs", limit=5)
    assert len(response.json()) == 5 and response.headers["x-next-cursor"]
    response = admin_api.get("/spend/logs", limit=50)
    assert len(response.json()) == 12 and "x-next-cursor" not in response.headers


def test_start_and_end_date_are_whole_utc_days(world, admin_api):
    start = dt.datetime.combine(DAY, dt.time(0), tzinfo=dt.timezone.utc)
    SpendLog.objects.bulk_create([
        _log(world.team_a_key, world.team_a, start - dt.timedelta(microseconds=1), request_id="day-before"),
        _log(world.team_a_key, world.team_a, start, request_id="first-instant"),
        _log(world.team_a_key, world.team_a, start + dt.timedelta(days=1, microseconds=-1), request_id="last-instant"),
        _log(world.team_a_key, world.team_a, start + dt.timedelta(days=1), request_id="day-after"),
    ])
    got = admin_api.get("/spend/logs", start_date=DAY.isoformat(), end_date=DAY.isoformat()).json()
    assert [r["request_id"] for r in got] == ["last-instant", "first-instant"]
    # LiteLLM's filters still combine with the range.
    got = admin_api.get("/spend/logs", api_key=world.team_a_plain, model="gpt-4o", start_date=DAY.isoformat()).json()
    assert [r["request_id"] for r in got] == ["day-after", "last-instant", "first-instant"]


def test_a_bad_cursor_is_a_clear_400(world, admin_api):
    response = admin_api.get("/spend/logs", cursor="yesterday")
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "cursor" and "x-next-cursor" in error["message"]
