"""Counters that say what a request costs the shared services, whatever the machine's load.

Redis: `INFO stats cpu commandstats` of the run's private redis-server (calls and usec per
command, EVALSHA included; bytes in and out; the server's own CPU time). The observer talks to it
over a raw socket and counts its own commands and bytes exactly, so they are taken out of every
difference. PostgreSQL: `pg_stat_database` (read from the `postgres` database, so reading it adds
nothing to the bench database's counters) and `pg_stat_user_tables` (one read per snapshot from
the bench database, whose transaction is taken out too). Processes: CPU time from
/proc/<pid>/task/*/schedstat, in nanoseconds (psutil's clock ticks are 10 ms, too coarse here).
"""
from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil

OBSERVER_COMMANDS = ("info", "xlen")


class RedisObserver:
    """A minimal RESP client over one socket that counts the commands and bytes it causes."""

    def __init__(self, port: int, db: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.calls: Counter[str] = Counter()
        self.bytes_in = self.bytes_out = 0   # as Redis counts them: in = what it read, out = what it wrote
        self._call("SELECT", str(db))

    def _call(self, *args: str) -> bytes | int:
        packed = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        self.sock.sendall(packed)
        self.calls[args[0].lower()] += 1
        self.bytes_in += len(packed)
        header = self._line()
        if header.startswith(b"$"):
            size = int(header[1:])
            while len(self.buffer) < size + 2:
                self._fill()
            body, self.buffer = self.buffer[:size], self.buffer[size + 2:]
            self.bytes_out += len(header) + 2 + size + 2
            return body
        self.bytes_out += len(header) + 2
        if header.startswith(b"-"):
            raise RuntimeError(f"redis: {header[1:].decode()}")
        return int(header[1:]) if header.startswith(b":") else header

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("redis closed the observer's connection")
        self.buffer += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def xlen(self, key: str) -> int:
        return int(self._call("XLEN", key))

    def snapshot(self) -> dict:
        """Server-wide counters, with what this observer caused up to now: Redis has read this INFO
        when it answers, but counts its call and its reply's bytes only after answering."""
        before = {"calls": dict(self.calls), "in": self.bytes_in, "out": self.bytes_out}
        text = self._call("INFO", "stats", "cpu", "commandstats").decode()
        commands, values = {}, {}
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.startswith("cmdstat_"):
                fields = dict(part.split("=") for part in value.split(","))
                commands[name[len("cmdstat_"):]] = {"calls": int(fields["calls"]), "usec": int(fields["usec"])}
            elif name in ("total_net_input_bytes", "total_net_output_bytes", "used_cpu_sys", "used_cpu_user",
                          "total_reads_processed", "total_writes_processed"):
                values[name] = float(value)
        before["in"] = self.bytes_in
        return {"commands": commands, "values": values, "observer": before, "at": time.monotonic()}

    def close(self) -> None:
        self.sock.close()


def redis_diff(a: dict, b: dict) -> dict:
    """What happened between two snapshots, the observer's own commands and bytes taken out."""
    mine = Counter(b["observer"]["calls"]) - Counter(a["observer"]["calls"])
    commands = {}
    for name, after in b["commands"].items():
        before = a["commands"].get(name, {"calls": 0, "usec": 0})
        calls, usec = after["calls"] - before["calls"], after["usec"] - before["usec"]
        if mine.get(name):
            # The observer's share of the time, at this command's average over the interval.
            usec -= round(usec * mine[name] / calls) if calls else 0
            calls -= mine[name]
        if calls > 0:
            commands[name] = {"calls": calls, "usec": usec}
    va, vb = a["values"], b["values"]
    return {
        "commands": commands,
        "calls": sum(c["calls"] for c in commands.values()),
        "command_usec": sum(c["usec"] for c in commands.values()),
        "cpu_usec": round((vb["used_cpu_sys"] + vb["used_cpu_user"] - va["used_cpu_sys"] - va["used_cpu_user"]) * 1e6),
        "bytes_in": int(vb["total_net_input_bytes"] - va["total_net_input_bytes"])
        - (b["observer"]["in"] - a["observer"]["in"]),
        "bytes_out": int(vb["total_net_output_bytes"] - va["total_net_output_bytes"])
        - (b["observer"]["out"] - a["observer"]["out"]),
        # Socket reads and writes Redis made serving clients: a pipelined batch is one read.
        "socket_reads": int(vb["total_reads_processed"] - va["total_reads_processed"]) - mine.total(),
        "socket_writes": int(vb["total_writes_processed"] - va["total_writes_processed"]) - mine.total(),
        "seconds": round(b["at"] - a["at"], 3),
    }


class MonitorTap:
    """MONITOR on its own connection, in a thread: every command, by who sent it (a client's port, or
    "lua" for the commands a script ran). Only for telling round trips from script calls: MONITOR
    costs Redis CPU, so no timing is read while it runs."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=None)
        self.sock.sendall(b"MONITOR\r\n")
        # Only once Redis has answered +OK does it feed this connection what others send.
        ok = b""
        while not ok.endswith(b"\r\n"):
            ok += self.sock.recv(1)
        if not ok.startswith(b"+OK"):
            raise RuntimeError(f"redis refused MONITOR: {ok!r}")
        self.seen: Counter[tuple[str, str]] = Counter()
        self._stop = False
        self.last_at = time.monotonic()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        while not self._stop:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            self.last_at = time.monotonic()
            *lines, buffer = buffer.split(b"\r\n")
            for line in lines:
                # +1700000000.123456 [1 127.0.0.1:50312] "EVALSHA" "..." / [1 lua] "INCRBY" ...
                head, _, rest = line.partition(b"] ")
                source = head.rpartition(b" ")[2].decode(errors="replace")
                name = rest.split(b'"')[1].decode(errors="replace").lower() if rest.count(b'"') >= 2 else ""
                if name:
                    self.seen[(source.rpartition(":")[2] if source != "lua" else "lua", name)] += 1

    def stop(self) -> Counter[tuple[str, str]]:
        """What was seen, once the feed has been quiet for 0.2 s (it trails the commands a little)."""
        deadline = time.monotonic() + 3
        while time.monotonic() - self.last_at < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop = True
        self.sock.close()
        self.thread.join(timeout=5)
        return self.seen


def local_ports(pids: list[int]) -> set[str]:
    """The local TCP ports the processes hold (their Redis connections among them)."""
    ports = set()
    for pid in pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.laddr:
                    ports.add(str(conn.laddr.port))
        except psutil.Error:
            pass
    return ports


class PgObserver:
    """pg_stat_database from the `postgres` database, pg_stat_user_tables from the bench database."""

    def __init__(self, database_url: str):
        import psycopg

        parts = urlsplit(database_url)
        self.name = parts.path.lstrip("/")
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.admin = psycopg.connect(self.admin_url, autocommit=True)
        self.bench = psycopg.connect(database_url, autocommit=True)
        self.backends: dict[int, int] = {}
        self._stop = False
        self.sampler = threading.Thread(target=self._sample_backends, daemon=True)
        self.sampler.start()

    def database(self) -> dict:
        row = self.admin.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched "
            "FROM pg_stat_database WHERE datname = %s", (self.name,)).fetchone()
        return dict(zip(("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
                         "tup_fetched"), row))

    def _sample_backends(self) -> None:
        """Every 25 ms, the CPU time of each backend serving the bench database (the observer's own
        excepted), kept after the backend exits: a connection opened for one task still counts."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop:
                pids = [pid for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                    (self.name, self.bench.info.backend_pid)).fetchall()]
                for pid in pids:
                    ns = cpu_ns([pid])
                    if ns:
                        self.backends[pid] = max(ns, self.backends.get(pid, 0))
                time.sleep(0.025)

    def snapshot(self) -> dict:
        time.sleep(0.05)                # one more sample of every backend
        backends = dict(self.backends)
        tables = {name: {"ins": i, "upd": u, "del": d} for name, i, u, d in self.bench.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables").fetchall()}
        return {"database": self.database(), "tables": tables, "backends_cpu_ns": backends, "at": time.monotonic()}

    def settle(self, *, writes_at_least: int, base: dict, timeout: float, quiet_s: float = 1.5) -> bool:
        """Wait until the database's tuple counters have grown by writes_at_least and then stayed still
        for quiet_s (a backend publishes its counters within a second of going idle)."""
        deadline = time.monotonic() + timeout
        last, still_since = None, time.monotonic()
        base = {k: v for k, v in base.items() if k != "tup_fetched"}
        while time.monotonic() < deadline:
            now = self.database()
            now.pop("tup_fetched")      # reading the statistics fetches rows too
            writes = sum(now[k] - base[k] for k in ("tup_inserted", "tup_updated", "tup_deleted"))
            if now != last:
                last, still_since = now, time.monotonic()
            elif writes >= writes_at_least and time.monotonic() - still_since >= quiet_s:
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self._stop = True
        self.sampler.join(timeout=5)
        self.admin.close()
        self.bench.close()


def pg_diff(a: dict, b: dict) -> dict:
    """Commits and tuple writes between two snapshots; the snapshot's own read of the bench database
    (one transaction) is taken out."""
    database = {k: b["database"][k] - a["database"][k] for k in b["database"]}
    database["xact_commit"] -= 1
    tables = {}
    for name, after in b["tables"].items():
        before = a["tables"].get(name, {"ins": 0, "upd": 0, "del": 0})
        change = {k: after[k] - before[k] for k in after}
        if any(change.values()):
            tables[name] = change
    # Backends seen by the second snapshot (ended ones with their last sample, up to 25 ms short).
    backend_ns = sum(ns - a["backends_cpu_ns"].get(pid, 0) for pid, ns in b["backends_cpu_ns"].items())
    return {"database": database, "tables": tables, "backends_cpu_ms": round(backend_ns / 1e6, 3),
            "seconds": round(b["at"] - a["at"], 3)}


def process_tree(pid: int) -> list[int]:
    try:
        parent = psutil.Process(pid)
        return [parent.pid, *(child.pid for child in parent.children(recursive=True))]
    except psutil.Error:
        return []


def cpu_ns(pids: list[int]) -> int:
    """CPU time the processes' threads have run, in nanoseconds (sum_exec_runtime of each thread)."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total
