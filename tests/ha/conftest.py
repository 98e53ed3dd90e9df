"""Real Redis master, replica and Sentinel processes on free ports, owned by the test."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

SERVICE = "llmur-ha"


def _redis(port: int):
    import redis

    return redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=2, decode_responses=True)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class SentinelCluster:
    """A master, one replica and one Sentinel (quorum 1, master down after 1 s)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.processes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, *args: str) -> None:
        log = open(self.dir / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(["redis-server", *args], cwd=self.dir, stdout=log,
                                                stderr=subprocess.STDOUT)

    def start(self) -> None:
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self._start("master", "--port", str(self.master_port), "--dbfilename", "master.rdb", *common)
        _wait(lambda: _redis(self.master_port).ping(), 10, "the master")
        self._start("replica", "--port", str(self.replica_port), "--dbfilename", "replica.rdb",
                    "--replicaof", "127.0.0.1", str(self.master_port), *common)
        _wait(lambda: _redis(self.replica_port).info("replication")["master_link_status"] == "up", 10,
              "the replica to sync")
        conf = self.dir / "sentinel.conf"   # Sentinel rewrites its file, so each test has its own
        conf.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
                        f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
                        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                        f"sentinel failover-timeout {SERVICE} 3000\n"
                        f"sentinel parallel-syncs {SERVICE} 1\n")
        self._start("sentinel", str(conf), "--sentinel")
        _wait(lambda: _redis(self.sentinel_port).sentinel_slaves(SERVICE), 15, "the sentinel to see the replica")

    def master_address(self) -> tuple[str, int]:
        host, port = _redis(self.sentinel_port).sentinel_get_master_addr_by_name(SERVICE)
        return host, int(port)

    def kill_master(self) -> None:
        process = self.processes.pop("master")
        process.kill()          # SIGKILL: no goodbye to clients, replica or sentinel
        process.wait(timeout=10)

    def wait_for_failover(self, timeout: float = 20) -> None:
        _wait(lambda: self.master_address()[1] == self.replica_port, timeout, "the replica's promotion")
        _wait(lambda: _redis(self.replica_port).info("replication")["role"] == "master", timeout,
              "the replica to take the master role")

    def config(self) -> dict:
        return {"sentinels": [{"host": "127.0.0.1", "port": self.sentinel_port}], "service_name": SERVICE}

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()


@pytest.fixture
def sentinel_cluster(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    cluster = SentinelCluster(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
