"""The run's one table, and the JSON file that keeps it."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path


def add_ratios(rows: list[dict]) -> None:
    """Fill each gateway row's overhead against the mock (and llmur's against LiteLLM) at the same load."""
    index = {(r["target"], r["mode"], r["connections"]): r for r in rows}
    for row in rows:
        if row["target"] == "mock":
            continue
        mock = index.get(("mock", row["mode"], row["connections"]))
        if mock:
            row["rps_vs_mock"] = _ratio(row.get("rps"), mock.get("rps"))
            row["added_p50_ms"] = _diff(row.get("p50_ms"), mock.get("p50_ms"))
            row["added_p99_ms"] = _diff(row.get("p99_ms"), mock.get("p99_ms"))
            row["added_ttfb_p50_ms"] = _diff(row.get("ttfb_p50_ms"), mock.get("ttfb_p50_ms"))
        litellm = index.get(("litellm", row["mode"], row["connections"]))
        if row["target"] == "llmur" and litellm:
            row["rps_vs_litellm"] = _ratio(row.get("rps"), litellm.get("rps"))
        bare = index.get(("bare", row["mode"], row["connections"]))
        if row["target"] == "llmur" and bare:
            row["rps_vs_bare"] = _ratio(row.get("rps"), bare.get("rps"))
            row["cpu_vs_bare"] = _ratio(row.get("cpu_ms_per_req"), bare.get("cpu_ms_per_req"))


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def _diff(a, b):
    return round(a - b, 3) if a is not None and b is not None else None


def _fmt(value, spec: str = "", none: str = "-") -> str:
    if value is None:
        return none
    return format(value, spec)


LOAD_COLUMNS = [
    ("target", 8, lambda r: r["target"]),
    ("mode", 6, lambda r: r["mode"]),
    ("conns", 5, lambda r: str(r["connections"])),
    ("req/s", 9, lambda r: _fmt(r.get("rps"), ",.0f")),
    ("p50 ms", 8, lambda r: _fmt(r.get("p50_ms"), ".2f")),
    ("p99 ms", 8, lambda r: _fmt(r.get("p99_ms"), ".2f")),
    ("TTFB p50", 8, lambda r: _fmt(r.get("ttfb_p50_ms"), ".2f")),
    ("TTFB p99", 8, lambda r: _fmt(r.get("ttfb_p99_ms"), ".2f")),
    ("failed", 6, lambda r: str(r.get("failed", 0) + r.get("ttfb_failed", 0))),
    ("x mock", 6, lambda r: _fmt(r.get("rps_vs_mock"), ".3f")),
    ("+p50 ms", 7, lambda r: _fmt(r.get("added_p50_ms"), ".2f")),
    ("+TTFB ms", 8, lambda r: _fmt(r.get("added_ttfb_p50_ms"), ".2f")),
    ("x litellm", 9, lambda r: _fmt(r.get("rps_vs_litellm"), ".1f")),
    ("x bare", 6, lambda r: _fmt(r.get("rps_vs_bare"), ".2f")),
    ("RSS MB", 6, lambda r: _fmt(r.get("rss_mb"), ".0f")),
    ("CPU ms/req", 10, lambda r: _fmt(r.get("cpu_ms_per_req"), ".3f")),
    ("req/CPU-s", 9, lambda r: _fmt(r.get("rps_per_core"), ",.0f")),
]


def _table(columns, rows) -> list[str]:
    # The first column is text and reads left-aligned; numbers read right-aligned.
    header = "  ".join(name.ljust(width) if i == 0 and width > 12 else name.rjust(width)
                       for i, (name, width, _) in enumerate(columns))
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append("  ".join(get(row).rjust(width) for _, width, get in columns))
    return lines


def render(result: dict) -> str:
    """The table a person reads at the end of a run."""
    lines = [f"llmur benchmark {result['started_at']}  ({result['machine']['cpu_model']}, "
             f"{result['machine']['cpu_count']} cores; {_cores_line(result['cores'])})",
             f"wrk {result['settings']['duration_s']:g} s per cell; TTFB by bench.ttfb "
             f"{result['settings']['ttfb_duration_s']:g} s per stream cell; ratios and added ms are against "
             f"the mock alone at the same load in this run; req/CPU-s is requests per second of the server "
             f"process's own CPU time (what one core sustains when nothing else runs on it); load average "
             f"{_load(result['machine'])}", ""]
    lines += _table(LOAD_COLUMNS, result["rows"])
    spend = result.get("spend_check")
    if spend:
        load, batch = spend["load"], spend["batch"]
        lines += ["", f"spend check: {spend['verdict']}",
                  f"  load cells: {load['spend_rows']} SpendLog rows ({load['spend_success_rows']} success) for "
                  f"{load['client_ok']} client successes + at most {load['cut_off_at_most']} cut off; "
                  f"{load['upstream_requests']} reached the mock; settled after {load['drain_s']} s",
                  f"  exact batch: {batch['ok']} of {batch['requests']} requests ok -> {batch['new_rows']} new rows "
                  f"({batch['new_success_rows']} success), drained in {batch['drain_s']} s"]
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"{name}: skipped: {reason}")
    scale = result.get("scale")
    if scale:
        lines += ["", f"records: {scale.get('rows', 0):,} SpendLog rows, {scale.get('daily_rows', 0):,} DailySpend "
                      f"rows over {scale.get('days')} days (generated in {scale.get('generate_s')} s, "
                      f"table {scale.get('table_mb')} MB)"]
        lines += _table(SCALE_COLUMNS, scale.get("timings", []))
    profile = result.get("profile")
    if profile and profile.get("top_self"):
        lines += ["", f"profile of the llmur worker ({profile['samples']} samples, {profile['mode']} "
                      f"c={profile['connections']}; full stacks in {profile['file']}):",
                  "   self%   incl%  function"]
        incl = {f: p for f, p in profile["top_inclusive"]}
        for frame, pct in profile["top_self"][:15]:
            lines.append(f"  {pct:6.1f}  {incl.get(frame, 0):6.1f}  {frame}")
    return "\n".join(lines)


SCALE_COLUMNS = [
    ("query", 44, lambda r: r["name"][:44].ljust(44)),
    ("status", 6, lambda r: str(r.get("status", "-"))),
    ("p50 ms", 8, lambda r: _fmt(r.get("p50_ms"), ".1f")),
    ("max ms", 8, lambda r: _fmt(r.get("max_ms"), ".1f")),
    ("bytes", 9, lambda r: _fmt(r.get("bytes"), ",d")),
    ("note", 0, lambda r: r.get("note", "")),
]


def _load(machine: dict) -> str:
    start, end = machine.get("loadavg_at_start"), machine.get("loadavg_at_end")
    return f"{start[0] if start else '?'} at start, {end[0] if end else '?'} at end"


def _cores_line(cores: dict) -> str:
    if not cores.get("pinned"):
        return "not pinned: fewer than two cores"
    return f"server on core {cores['server_cores']}, load/mock/workers on {cores['load_cores']}"


def write(result: dict, directory: Path, started: datetime) -> Path:
    """bench/results/<date>.json; a second run on the same day gets -2, -3, ... rather than overwriting."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y-%m-%d")
    path = directory / f"{stem}.json"
    n = 2
    while path.exists():
        path = directory / f"{stem}-{n}.json"
        n += 1
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path
