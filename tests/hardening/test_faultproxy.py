"""The fault proxy does what the fault tests rely on, shown on a test-owned redis-server."""
from __future__ import annotations

import socket
import time

import pytest
import redis

from tests.hardening.faultproxy import FaultProxy


@pytest.fixture
def proxied(own_redis):
    proxy = FaultProxy(own_redis.port)
    yield proxy
    proxy.close()


def _client(proxy: FaultProxy, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis(port=proxy.port, socket_timeout=timeout, socket_connect_timeout=timeout)


def test_traffic_passes_through_untouched(proxied):
    client = _client(proxied)
    client.set("k", b"\x00\xffvalue")
    assert client.get("k") == b"\x00\xffvalue" and proxied.open_connections == 1


def _raw(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    sock.sendall(b"PING\r\n")
    assert sock.recv(100) == b"+PONG\r\n"
    return sock


def test_cut_drops_open_connections_and_later_ones_work(proxied):
    sock = _raw(proxied)
    proxied.cut()
    try:
        # Nothing sent after the cut, so nothing to reset: the client reads the end of the stream
        # (an open connection would time out here instead).
        assert sock.recv(100) == b""
    finally:
        sock.close()
    _raw(proxied).close()


def test_refuse_closes_every_connection_until_healed(proxied):
    proxied.refuse(True)
    with pytest.raises(redis.ConnectionError):
        _client(proxied).ping()
    proxied.heal()
    assert _client(proxied).ping()


def test_stall_holds_bytes_without_closing(proxied):
    sock = _raw(proxied)
    proxied.stall(True)
    sock.sendall(b"PING\r\n")
    sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        sock.recv(100)                          # no answer, and no close either
    proxied.stall(False)
    sock.settimeout(2)
    assert sock.recv(100) == b"+PONG\r\n"     # the held bytes go through once released
    sock.close()


def test_latency_delays_every_chunk(proxied):
    client = _client(proxied)
    client.ping()
    proxied.latency(0.2)
    started = time.monotonic()
    client.ping()
    # A lower bound only: each direction waits at least the added latency.
    assert time.monotonic() - started >= 0.4
