"""The admin sign-in throttle (llmur/login_throttle.py): audit findings 16.6, 16.10 (sign-in part) and 16.11.

Counting happens before the password check, atomically, so parallel guesses get no more checks
than the limit and a refusal costs nothing; failures count per account and per address, the
address being the peer unless it is a proxy named in trusted_proxies; with Redis down, fail_open
counts in the process and fail_closed answers 503.
"""
from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from llmur import login_throttle
from tests.conftest import start_gateway
from tests.hardening.conftest import OwnRedis

PASSWORD = "correct horse battery staple"


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own: its counters start empty, and the test may stop it."""
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fast_hasher(settings):
    """In-process tests only: a server subprocess checks passwords with the default hashers."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _superuser() -> str:
    name = f"root-{uuid.uuid4().hex[:8]}"
    User.objects.create_superuser(name, f"{name}@example.com", PASSWORD)
    return name


class SignIn:
    """The admin's login form driven over HTTP, as a browser does: a CSRF cookie and token, then POSTs."""

    def __init__(self, url: str):
        self.url = f"{url}/admin/login/"
        page = requests.get(self.url, timeout=30)
        self.cookies = dict(page.cookies)
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    def post(self, username: str, password: str, forwarded_for: str | None = None) -> requests.Response:
        headers = {"Referer": self.url}
        if forwarded_for:
            headers["X-Forwarded-For"] = forwarded_for
        return requests.post(self.url, data={"username": username, "password": password, "next": "/admin/",
                                             "csrfmiddlewaretoken": self.token},
                             cookies=self.cookies, headers=headers, allow_redirects=False, timeout=60)


# --------------------------------------------------------------------------- 16.6: atomic, cheap

@pytest.fixture(scope="module")
def guessed_server(tmp_path_factory, django_db_setup, django_db_blocker):
    """One server (and its own Redis) for both sizes of the parallel guess; each test empties the Redis."""
    redis_server = OwnRedis(tmp_path_factory.mktemp("throttle-redis"))
    redis_server.start()
    with django_db_blocker.unblock():
        server = start_gateway({"trusted_proxies": ["127.0.0.1/32"]}, env={"REDIS_URL": redis_server.url})
    yield server, redis_server
    server.stop()
    redis_server.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("parallel", [30, 60])
def test_parallel_wrong_passwords_get_exactly_the_limit_of_password_checks(parallel, guessed_server):
    server, redis_server = guessed_server
    redis_server.client().flushdb()             # no count left by the other size: the counters start empty
    username = _superuser()
    sign_in = SignIn(server.url)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        statuses = list(pool.map(lambda _: sign_in.post(username, "wrong").status_code, range(parallel)))
    # 200 is the form coming back: a password that was checked and wrong.
    assert statuses.count(200) == login_throttle.ACCOUNT_MAX_FAILURES, sorted(statuses)
    assert statuses.count(429) == parallel - login_throttle.ACCOUNT_MAX_FAILURES
    assert "PoolTimeout" not in server.output() and "Internal Server Error" not in server.output()


@pytest.mark.django_db
def test_a_refused_sign_in_costs_no_database_query(django_assert_num_queries, fast_hasher):
    username = _superuser()
    client = Client()
    for _ in range(login_throttle.ACCOUNT_MAX_FAILURES):
        assert client.post("/admin/login/", {"username": username, "password": "wrong"}).status_code == 200
    with django_assert_num_queries(0):
        refused = client.post("/admin/login/", {"username": username, "password": PASSWORD})
    assert refused.status_code == 429 and refused["Retry-After"] == str(login_throttle.WINDOW_SECONDS)
    assert "Too many failed sign-in attempts" in refused.content.decode()


# --------------------------------------------------------------------------- 16.11: whose address, per account

@pytest.mark.django_db
def test_one_locked_account_leaves_other_accounts_at_the_same_address_open(fast_hasher):
    alice, bob = _superuser(), _superuser()
    office = Client(REMOTE_ADDR="10.1.1.1")
    for _ in range(login_throttle.ACCOUNT_MAX_FAILURES):
        assert office.post("/admin/login/", {"username": alice, "password": "wrong"}).status_code == 200
    assert office.post("/admin/login/", {"username": alice, "password": PASSWORD}).status_code == 429
    assert Client(REMOTE_ADDR="10.1.1.1").post("/admin/login/", {"username": bob, "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
def test_one_address_trying_many_accounts_is_refused_past_the_address_limit(fast_hasher):
    client = Client(REMOTE_ADDR="10.2.2.2")
    for index in range(login_throttle.ADDRESS_MAX_FAILURES):
        assert client.post("/admin/login/", {"username": f"nobody-{index}", "password": "x"}).status_code == 200
    assert client.post("/admin/login/", {"username": "nobody-else", "password": "x"}).status_code == 429
    assert Client(REMOTE_ADDR="10.2.2.3").post("/admin/login/", {"username": "nobody-else",
                                                                 "password": "x"}).status_code == 200


def _address_used_up(redis, address: str) -> None:
    """Spend an address's whole allowance in the server's Redis, as ADDRESS_MAX_FAILURES failures would."""
    redis.set(cache.make_key(login_throttle.address_key(address)), login_throttle.ADDRESS_MAX_FAILURES,
              ex=login_throttle.WINDOW_SECONDS)


@pytest.mark.django_db(transaction=True)
def test_a_spoofed_forwarded_for_is_not_believed_without_trusted_proxies(own_redis, django_db_setup):
    server = start_gateway({}, env={"REDIS_URL": own_redis.url})
    try:
        sign_in = SignIn(server.url)
        _address_used_up(own_redis.client(), "127.0.0.1")
        spoofed = sign_in.post("nobody", "x", forwarded_for="198.51.100.7").status_code
    finally:
        server.stop()
    # Counted against the real peer, whatever address the header claimed.
    assert spoofed == 429


@pytest.mark.django_db(transaction=True)
def test_a_trusted_proxys_forwarded_for_is_the_counted_address(own_redis, django_db_setup):
    server = start_gateway({"trusted_proxies": ["127.0.0.0/8"]}, env={"REDIS_URL": own_redis.url})
    try:
        sign_in = SignIn(server.url)
        _address_used_up(own_redis.client(), "203.0.113.7")
        used_up = sign_in.post("nobody", "x", forwarded_for="203.0.113.7").status_code
        neighbour = sign_in.post("nobody", "x", forwarded_for="203.0.113.8").status_code
    finally:
        server.stop()
    assert used_up == 429
    assert neighbour == 200


# --------------------------------------------------------------------------- 16.10: Redis down

@pytest.mark.django_db(transaction=True)
def test_sign_in_keeps_working_and_counts_in_the_process_under_fail_open_while_redis_is_down(own_redis,
                                                                                              django_db_setup):
    username, victim = _superuser(), _superuser()
    server = start_gateway({"cache_failure_policy": "fail_open"}, env={"REDIS_URL": own_redis.url})
    try:
        sign_in = SignIn(server.url)
        own_redis.stop()
        signed_in = sign_in.post(username, PASSWORD)
        failures = [sign_in.post(victim, "wrong").status_code for _ in range(login_throttle.ACCOUNT_MAX_FAILURES)]
        locked = sign_in.post(victim, PASSWORD).status_code
    finally:
        server.stop()
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/admin/"
    assert failures == [200] * login_throttle.ACCOUNT_MAX_FAILURES
    assert locked == 429
    assert "Internal Server Error" not in server.output()


@pytest.mark.django_db(transaction=True)
def test_sign_in_is_a_503_page_under_fail_closed_while_redis_is_down(own_redis, django_db_setup):
    username = _superuser()
    server = start_gateway({"cache_failure_policy": "fail_closed"}, env={"REDIS_URL": own_redis.url})
    try:
        sign_in = SignIn(server.url)
        own_redis.stop()
        answer = sign_in.post(username, PASSWORD)
    finally:
        server.stop()
    assert answer.status_code == 503
    assert "Sign-in is unavailable while the cache (Redis) is unreachable" in answer.text
    assert "Internal Server Error" not in server.output()
