"""Plain HTTP against a running gateway, for what the SDKs hide: raw statuses, headers and SSE lines."""
from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit


def post(url: str, path: str, body: bytes | dict | None, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, dict[str, str], dict | str]:
    """One request; returns (status, lower-cased headers, JSON body or text)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    try:
        connection.request(method, path, body=data, headers={"content-type": "application/json", **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()
    try:
        return response.status, found, json.loads(raw)
    except ValueError:
        return response.status, found, raw.decode("utf-8", "replace")


def sse_lines(url: str, path: str, body: dict, headers: dict[str, str]) -> tuple[int, list[str]]:
    """POST a streaming request and read the whole event stream; returns (status, non-empty lines)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", path, body=json.dumps(body).encode(),
                           headers={"content-type": "application/json", **headers})
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    return response.status, [line for line in text.split("\n") if line.strip()]


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
