"""The README's first hour, run as a newcomer runs it: a fresh clone, its commands in order, verbatim,
from the top up to and including the admin login, and what they show checked as a newcomer reads it.

The commands come from README.md itself (of the clone), so the two cannot drift apart: every ```sh
and ```python block before `<!-- readme-test: end -->`, in order. An HTML comment right before a
block (invisible on GitHub) says how to run it:

    <!-- readme-test: serve URL -->    a server: runs in the background until URL answers; a later
                                       server on the same port replaces it, as Ctrl-C would
    <!-- readme-test: skip (why) -->   not run

Other sh blocks run with `bash -euo pipefail` in the clone and must succeed; python blocks run with
the clone's .venv/bin/python. The one change: the README's ports (8082 for llmur, 9100 for the fake
provider) become free ones, so this runs beside a llmur already serving on 8082; LLMUR_PORT carries
the port to the servers the README starts without naming it. The environment is a newcomer's:
nothing of llmur's (no DATABASE_URL, REDIS_URL, LLMUR_*), so the clone runs on the embedded default.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

MARKER = re.compile(r"<!--\s*readme-test:\s*(\w+)\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
# What a newcomer's shell has; everything else (llmur's variables above all) is left out.
KEPT_ENV = re.compile(r"^(PATH|HOME|USER|LOGNAME|LANG|LC_\w+|TERM|TMPDIR|PIP_\w+|UV_\w+|https?_proxy|HTTPS?_PROXY|"
                      r"no_proxy|NO_PROXY|SSL_CERT_\w+|REQUESTS_CA_BUNDLE)$")


@dataclass
class Block:
    language: str
    text: str
    how: str = "run"            # run, serve, skip
    url: str = ""


@dataclass
class Ran:
    block: Block
    stdout: str = ""
    log: Path | None = None


def readme_blocks(readme: str) -> list[Block]:
    """The sh and python blocks before the end marker, each with the marker just before it."""
    end = readme.find("<!-- readme-test: end -->")
    assert end > 0, "README.md lost its <!-- readme-test: end --> marker"
    blocks = []
    for fence in FENCE.finditer(readme[:end]):
        language = fence.group(1)
        if language not in ("sh", "python"):
            continue
        before = readme[:fence.start()].rstrip()
        marker = MARKER.search(before[before.rfind("\n") + 1:])
        block = Block(language, fence.group(2))
        if marker:
            block.how = marker.group(1)
            block.url = marker.group(2) if block.how == "serve" else ""
            assert block.how in ("serve", "skip"), f"unknown readme-test marker: {marker.group(0)}"
        blocks.append(block)
    return blocks


def newcomer_env(llmur_port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if KEPT_ENV.match(name)}
    env["LLMUR_PORT"] = str(llmur_port)
    return env


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the README's server exited ({process.returncode}) before {url} answered:\n"
                                 f"{log.read_text(errors='replace')[-4000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout:.0f} s:\n"
                                     f"{log.read_text(errors='replace')[-4000:]}") from None
            time.sleep(0.2)


@dataclass
class Newcomer:
    """Runs README blocks in a clone, keeping the servers they start until stop()."""

    clone: Path
    env: dict[str, str]
    ports: dict[str, int]
    servers: dict[int, subprocess.Popen] = field(default_factory=dict)
    ran: list[Ran] = field(default_factory=list)

    def localize(self, text: str) -> str:
        for readme_port, port in self.ports.items():
            text = re.sub(rf"\b{readme_port}\b", str(port), text)
        return text

    def run(self, block: Block) -> None:
        text = self.localize(block.text)
        if block.how == "serve":
            url = self.localize(block.url)
            port = int(re.search(r":(\d+)", url).group(1))
            self.stop_server(port)                                   # Ctrl-C on the one before
            log = self.clone.parent / f"server-{len(self.ran)}.log"
            with open(log, "w") as out:
                process = subprocess.Popen(["bash", "-c", text], cwd=self.clone, env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            self.servers[port] = process
            wait_for(url, process, log, timeout=600)                   # the first one installs .venv
            self.ran.append(Ran(block, log=log))
            return
        command = ["bash", "-euo", "pipefail", "-c", text] if block.language == "sh" else \
            [str(self.clone / ".venv" / "bin" / "python"), "-c", text]
        result = subprocess.run(command, cwd=self.clone, env=self.env, capture_output=True, text=True, timeout=600,
                                check=False)
        assert result.returncode == 0, f"README block failed ({result.returncode}):\n{text}\n" \
                                       f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        self.ran.append(Ran(block, stdout=result.stdout))

    def output_of(self, fragment: str) -> Ran:
        """What the one block containing fragment printed (or, for a server, its log)."""
        matches = [ran for ran in self.ran if fragment in ran.block.text]
        assert len(matches) == 1, f"{len(matches)} README blocks ran with {fragment!r}"
        return matches[0]

    def stop_server(self, port: int) -> None:
        process = self.servers.pop(port, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        for port in list(self.servers):
            self.stop_server(port)


@pytest.fixture(scope="module")
def newcomer():
    """A fresh clone of this repository (its committed HEAD) with the README run in it up to the end marker."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    workdir = Path(tempfile.mkdtemp(prefix="llmur-readme-"))
    clone = workdir / "llmur"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    ports = {8082: free_port(), 9100: free_port()}
    person = Newcomer(clone, newcomer_env(ports[8082]), ports)
    try:
        for block in readme_blocks((clone / "README.md").read_text()):
            if block.how != "skip":
                person.run(block)
        yield person
    finally:
        person.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def llmur_url(newcomer: Newcomer, path: str) -> str:
    return f"http://127.0.0.1:{newcomer.ports[8082]}{path}"


def chat(newcomer: Newcomer, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(llmur_url(newcomer, "/v1/chat/completions"), data=json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_scripts_run_serves_the_embedded_default_and_prints_a_master_key_once(newcomer):
    banner = newcomer.output_of("scripts/run\n").log.read_text()
    assert "serving on http://" in banner and "database: sqlite" in banner and "cache:    local memory" in banner
    assert f"data:     {newcomer.clone / 'var'}" in banner                 # the clone's own var/
    assert re.search(r"A master key was generated .*\n\s+sk-\S+", banner)
    readiness = json.loads(newcomer.output_of("/health/readiness").stdout)
    assert readiness["status"] == "healthy" and readiness["down"] == []


def test_the_first_request_is_answered_by_the_fake_provider_through_curl_and_the_openai_sdk(newcomer):
    banner = newcomer.output_of("scripts/run --configuration try.yaml").log.read_text()
    assert "try.yaml" in banner and "1 deployment(s) from config" in banner
    answer = json.loads(newcomer.output_of('"content": "Hello"}]}').stdout)
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"].strip()
    text, tokens = newcomer.output_of("from openai import OpenAI").stdout.rsplit(" ", 1)
    assert text.strip() and int(tokens) > 0


def test_a_key_made_through_the_management_api_works_at_once(newcomer):
    answer = json.loads(newcomer.output_of("/key/generate").stdout)
    assert answer["choices"][0]["message"]["content"].strip() and answer["usage"]["total_tokens"] > 0


def test_a_key_made_by_generate_key_in_the_new_team_works(newcomer):
    team = json.loads(newcomer.output_of("/team/new").stdout)
    assert team["team_alias"] == "search"
    printed = newcomer.output_of("manage.py generate_key").stdout.strip().splitlines()
    assert "team search" in printed[-3] and printed[-1].startswith("sk-")
    status, answer = chat(newcomer, printed[-1])
    assert status == 200 and answer["choices"][0]["message"]["content"].strip()


def test_the_admin_created_without_a_prompt_signs_in_and_is_listed_as_a_proxy_admin(newcomer):
    import requests

    command = newcomer.output_of("createsuperuser")
    assert "Superuser created successfully." in command.stdout
    password = re.search(r"DJANGO_SUPERUSER_PASSWORD='([^']+)'", command.block.text).group(1)
    username = re.search(r"--username (\S+)", command.block.text).group(1)
    session = requests.Session()
    login = llmur_url(newcomer, "/admin/login/")
    page = session.get(login, timeout=30)
    assert page.status_code == 200 and 'name="password"' in page.text
    signed_in = session.post(login + "?next=/admin/", timeout=30, headers={"Referer": login}, data={
        "username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "next": "/admin/"})
    assert signed_in.status_code == 200 and signed_in.url == llmur_url(newcomer, "/admin/")
    assert "Dashboard" in signed_in.text and "Log out" in signed_in.text
    users = session.get(llmur_url(newcomer, "/admin/accounts/user/"), timeout=30).text
    assert "Proxy admin (superuser)" in users
