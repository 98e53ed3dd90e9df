"""A small OpenID Connect provider for tests: authorization code flow, RS256 id_tokens, userinfo, JWKS.

Standard library HTTP server plus `cryptography` for signing. It signs in whoever `next_user` names
without a login page (the tests play the person), and checks what a real provider checks: the
client id and secret, the redirect URI the code was issued for, and that each code is used once.

To play a hostile or broken provider, a test sets `id_token_claims` (claims that replace the ones
the next id_token would carry: another `aud`, `iss`, `nonce`, an `exp` in the past) or
`forge_signature` (the next id_tokens are signed with a key the JWKS does not publish).
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class OidcProvider:
    def __init__(self, client_id: str = "llmur-admin", client_secret: str = "test-client-secret"):
        self.client_id, self.client_secret = client_id, client_secret
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.next_user: dict[str, Any] = {}
        self.id_token_claims: dict[str, Any] = {}
        self.forge_signature = False
        self._forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, dict] = {}
        self._tokens: dict[str, dict] = {}
        self.token_requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "OidcProvider":
        self._thread.start()
        return self

    def behave(self) -> None:
        """Back to an honest provider."""
        self.id_token_claims, self.forge_signature = {}, False

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def config(self, **extra: Any) -> dict[str, Any]:
        """The `oidc:` block of an llmur config pointing at this provider."""
        return {"client_id": self.client_id, "client_secret": self.client_secret, "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize", "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/userinfo", "jwks_endpoint": f"{self.url}/jwks",
                "scopes": "openid email profile groups", **extra}

    # ------------------------------------------------------------------ tokens

    def _jwt(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        payload = _b64(json.dumps(claims).encode())
        key = self._forger if self.forge_signature else self._key
        signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64(signature)}"

    def _jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        def as_b64(n: int) -> str:
            return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": as_b64(numbers.n), "e": as_b64(numbers.e)}]}

    # ------------------------------------------------------------------ HTTP

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/authorize":
                    if query.get("client_id") != provider.client_id or query.get("response_type") != "code":
                        return self._json(400, {"error": "invalid_request"})
                    code = secrets.token_urlsafe(16)
                    provider._codes[code] = {"user": dict(provider.next_user), "nonce": query.get("nonce"),
                                             "redirect_uri": query["redirect_uri"]}
                    target = query["redirect_uri"] + "?" + urllib.parse.urlencode(
                        {"code": code, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                    return None
                if url.path == "/jwks":
                    return self._json(200, provider._jwks())
                if url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    grant = provider._tokens.get(token)
                    if grant is None:
                        return self._json(401, {"error": "invalid_token"})
                    return self._json(200, grant["user"])
                return self._json(404, {"error": "not_found"})

            def do_POST(self):
                if self.path != "/token":
                    return self._json(404, {"error": "not_found"})
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                provider.token_requests += 1
                if (form.get("client_id"), form.get("client_secret")) != (provider.client_id, provider.client_secret):
                    return self._json(401, {"error": "invalid_client"})
                grant = provider._codes.pop(form.get("code", ""), None)  # each code works once
                if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                    return self._json(400, {"error": "invalid_grant"})
                now = int(time.time())
                claims = {"iss": provider.url, "aud": provider.client_id, "sub": grant["user"]["sub"],
                          "email": grant["user"].get("email"), "iat": now, "exp": now + 300,
                          "nonce": grant["nonce"], **provider.id_token_claims}
                access = secrets.token_urlsafe(24)
                provider._tokens[access] = grant
                return self._json(200, {"access_token": access, "token_type": "Bearer", "expires_in": 300,
                                        "id_token": provider._jwt(claims)})

        return Handler
