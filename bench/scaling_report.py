"""Per-request figures from `python -m bench.scaling`'s raw differences, and the table it prints."""
from __future__ import annotations

import json
from datetime import datetime
from numbers import Number
from pathlib import Path


def _minus(value, rate, factor: float):
    """value - rate * factor, leaf by leaf ("seconds" kept); what one side lacks counts as 0."""
    if isinstance(value, dict) or isinstance(rate, dict):
        value = value if isinstance(value, dict) else {}
        rate = rate if isinstance(rate, dict) else {}
        return {k: value.get(k, 0) if k == "seconds" else _minus(value.get(k, 0), rate.get(k, 0), factor)
                for k in set(value) | set(rate)}
    if isinstance(value, Number) and isinstance(rate, Number):
        return value - rate * factor
    return value


def _scale(value, by: float):
    if isinstance(value, dict):
        return {k: v if k == "seconds" else _scale(v, by) for k, v in value.items()}
    return round(value * by, 4) if isinstance(value, Number) else value


def net(diff: dict, background: dict) -> dict:
    """A phase's difference without the background the idle window measured over the same time."""
    return _minus(diff, background, diff["seconds"] / background["seconds"])


def per_request(measurement: dict, idle: dict) -> dict:
    """Gateway and worker costs of one request of a kind, background taken out."""
    n = measurement["n"]
    return {"gateway": _scale(net(measurement["gateway"], idle["gateway"]), 1 / n),
            "worker": _scale(net(measurement["worker"], idle["all"]), 1 / n)}


def tuple_writes(pg: dict) -> float:
    return sum(sum(change.values()) for change in pg["tables"].values())


def _top_level_usec(part: dict, classified: dict) -> float:
    """Time of the commands clients sent, without the calls scripts made inside them (EVALSHA's time
    already holds its scripts' calls; commandstats lists those calls again under their own names)."""
    usec = 0.0
    for name, c in part["redis"]["commands"].items():
        top = sum(classified[p].get(name, 0) for p in ("gateway", "worker", "other"))
        inner = classified["scripts"].get(name, 0)
        usec += c["usec"] * (top / (top + inner) if top + inner else 1.0)
    return usec


def summary(row: dict) -> dict:
    """The table's numbers for one kind, per request: gateway + worker."""
    g, w, k = row["per_request"]["gateway"], row["per_request"]["worker"], row["classified"]
    both = lambda f: round(f(g) + f(w), 3)
    spend = lambda part: part["pg"]["tables"].get("billing_spendlog", {}).get("ins", 0)
    return {
        "redis_round_trips_gateway": round(sum(k["gateway"].values()), 2),
        "redis_script_calls": round(sum(k["scripts"].values()), 2),
        "redis_calls_worker": round(w["redis"]["calls"], 2),
        "redis_command_usec": round(_top_level_usec(g, k) + _top_level_usec(w, k), 1),
        "redis_cpu_usec": both(lambda p: p["redis"]["cpu_usec"]),
        "redis_cpu_usec_gateway": round(g["redis"]["cpu_usec"], 1),
        "redis_socket_reads": both(lambda p: p["redis"]["socket_reads"]),
        "bytes_in": both(lambda p: p["redis"]["bytes_in"]), "bytes_out": both(lambda p: p["redis"]["bytes_out"]),
        "pg_commits": both(lambda p: p["pg"]["database"]["xact_commit"]),
        "pg_tuple_writes": both(lambda p: tuple_writes(p["pg"])),
        "pg_backend_cpu_ms": both(lambda p: p["pg"]["backends_cpu_ms"]),
        "pg_rows_fetched": both(lambda p: p["pg"]["database"]["tup_fetched"]),
        "spendlog_inserts": both(spend),
        "gateway_cpu_ms": round(g["gateway_cpu_ms"], 3), "worker_cpu_ms": round(w["worker_cpu_ms"], 3),
    }


def _names(counts: dict, threshold: float = 0.005) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{name} {n:.2f}" for name, n in items if n >= threshold) or "-"


def _commands(part: dict) -> str:
    return _names({name: c["calls"] for name, c in part["redis"]["commands"].items()})


def _tables(part: dict, threshold: float = 0.005) -> str:
    shown = []
    for name, change in sorted(part["pg"]["tables"].items()):
        text = " ".join(f"{k} {v:.2f}" for k, v in change.items() if abs(v) >= threshold)
        if text:
            shown.append(f"{name} {text}")
    return "; ".join(shown) or "-"


def render(result: dict) -> str:
    lines = [f"llmur scaling counters, {result['started_at']} (load average {result['machine']['loadavg_at_start']}"
             f" at start, {result['machine'].get('loadavg_at_end')} at end); per request, background taken out",
             "",
             f"{'kind':<12} {'c':>3} {'answers':<10} {'round trips':>11} {'in scripts':>10} {'worker':>6} "
             f"{'cmd µs':>6} {'Redis CPU µs':>12} {'bytes in/out':>13} {'PG commits':>10} {'PG tuples':>9} "
             f"{'PG CPU ms':>9} {'gw CPU ms':>9} {'wk CPU ms':>9}"]
    for row in result["rows"]:
        s = row["summary"]
        answers = ",".join(f"{k}×{v}" for k, v in row["sent"]["statuses"].items())
        lines.append(f"{row['kind']:<12} {row['connections']:>3} {answers:<10} "
                     f"{s['redis_round_trips_gateway']:>11.2f} {s['redis_script_calls']:>10.2f} "
                     f"{s['redis_calls_worker']:>6.2f} {s['redis_command_usec']:>6.1f} "
                     f"{s['redis_cpu_usec']:>12.1f} {s['bytes_in']:>6.0f}/{s['bytes_out']:<6.0f} "
                     f"{s['pg_commits']:>10.3f} {s['pg_tuple_writes']:>9.2f} {s['pg_backend_cpu_ms']:>9.3f} "
                     f"{s['gateway_cpu_ms']:>9.3f} {s['worker_cpu_ms']:>9.3f}")
    lines.append("")
    for row in result["rows"]:
        g, w, k = row["per_request"]["gateway"], row["per_request"]["worker"], row["classified"]
        lines.append(f"{row['kind']} c={row['connections']}: gateway sends {_names(k['gateway'])}; its scripts call "
                     f"{_names(k['scripts'])} | worker {_commands(w)}")
        lines.append(f"    database, worker: {_tables(w)}" + (f"; gateway: {_tables(g)}" if g["pg"]["tables"] else ""))
    if result.get("rollup"):
        r = result["rollup"]
        lines.append(f"\nrollup: {r['rows']} SpendLog rows rolled up in {r['waited_s']} s; per row: "
                     f"{_tables(r['per_row'])}; commits {r['per_row']['pg']['database']['xact_commit']:.3f}")
    if result.get("redis_benchmark"):
        b = result["redis_benchmark"]
        lines.append(f"\nredis-benchmark on this machine: {b['command']}: {b['rps']:,.0f} calls/s with "
                     f"{b['clients']} clients; Redis CPU {b['cpu_usec_per_call']:.1f} µs per call "
                     f"({b['command_usec_per_call']:.2f} µs of it in the command)")
    for check in result.get("load_check", []):
        m, p = check["measured"], check["model"]
        lines.append(f"\nload check, {check['workers']} gateway workers, wrk json c={check['connections']} "
                     f"{check['duration_s']} s, beat on (load average {check['loadavg_before']} -> "
                     f"{check['loadavg_after']}): {check['rps']:,.0f} req/s, {check['admitted']} admitted")
        lines.append("    per request, measured (model): " + ", ".join(
            f"{name} {m[name]:.3f} ({p[name]:.3f})" for name in m))
        lines.append(f"    Redis busy {check['redis_utilisation'] * 100:.1f} % of one core while wrk ran "
                     f"(the model: {check['redis_utilisation_predicted'] * 100:.1f} %)")
    for problem in result.get("problems", []):
        lines.append(f"!!! {problem}")
    return "\n".join(lines)


def write(result: dict, directory: Path, started: datetime) -> Path:
    """bench/results/scaling-<date>.json; a second run on the same day gets -2, -3, ..."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("scaling-%Y-%m-%d")
    path, n = directory / f"{stem}.json", 2
    while path.exists():
        path, n = directory / f"{stem}-{n}.json", n + 1
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path
