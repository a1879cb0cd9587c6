"""A local OAuth 2.0 / OpenID Connect provider speaking the real protocol over loopback HTTP.

It plays GitHub (``/login/oauth/authorize``, ``/login/oauth/access_token``, ``/user``,
``/user/emails``) and Google (``/authorize``, ``/token`` returning an RS256 id_token, OIDC
discovery and JWKS). The authorize endpoint answers at once with a redirect carrying the code
(as if the user consented). The token endpoint checks the client credentials, the redirect URI
and the PKCE ``code_verifier`` against the ``code_challenge`` (S256), and codes work once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "vibecode-test-client"
CLIENT_SECRET = "vibecode-test-secret"
KEY_ID = "test-key-1"


@dataclass
class Identity:
    subject: str
    name: str
    # (email, verified, primary)
    emails: list[tuple[str, bool, bool]]


@dataclass
class _Grant:
    redirect_uri: str
    challenge: str
    method: str
    nonce: str | None
    identity: Identity


@dataclass
class FakeOAuthProvider:
    server: ThreadingHTTPServer
    identity: Identity = field(default_factory=lambda: Identity("1001", "Ada", []))
    grants: dict[str, _Grant] = field(default_factory=dict)
    tokens: dict[str, Identity] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    signing_key: Any = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.signing_key.public_key(), as_dict=True)
        public.update({"kid": KEY_ID, "use": "sig", "alg": "RS256"})
        return {"keys": [public]}

    def id_token(self, grant: _Grant) -> str:
        identity = grant.identity
        email, verified, _ = identity.emails[0] if identity.emails else ("", False, True)
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "sub": identity.subject,
            "iat": now,
            "exp": now + 300,
            "email": email,
            "email_verified": verified,
            "name": identity.name,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        return jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": KEY_ID})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(provider_ref: list[FakeOAuthProvider]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            provider = provider_ref[0]
            parsed = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            if parsed.path in ("/login/oauth/authorize", "/authorize"):
                if query.get("client_id") != CLIENT_ID or query.get("response_type") != "code":
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                provider.grants[code] = _Grant(
                    redirect_uri=query["redirect_uri"],
                    challenge=query.get("code_challenge", ""),
                    method=query.get("code_challenge_method", ""),
                    nonce=query.get("nonce"),
                    identity=provider.identity,
                )
                target = (
                    query["redirect_uri"]
                    + "?"
                    + urlencode({"code": code, "state": query.get("state", "")})
                )
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if parsed.path == "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": provider.url,
                        "authorization_endpoint": provider.url + "/authorize",
                        "token_endpoint": provider.url + "/token",
                        "userinfo_endpoint": provider.url + "/userinfo",
                        "jwks_uri": provider.url + "/jwks",
                    },
                )
                return
            if parsed.path == "/jwks":
                self._json(200, provider.jwks())
                return
            identity = self._bearer_identity()
            if identity is None:
                self._json(401, {"message": "Bad credentials"})
                return
            if parsed.path == "/user":
                first = identity.emails[0][0] if identity.emails else None
                self._json(
                    200,
                    {
                        "id": int(identity.subject),
                        "login": "ada",
                        "name": identity.name,
                        "email": first,
                    },
                )
            elif parsed.path == "/user/emails":
                self._json(
                    200,
                    [
                        {"email": e, "verified": v, "primary": p, "visibility": None}
                        for e, v, p in identity.emails
                    ],
                )
            else:
                self._json(404, {"message": "Not Found"})

        def _bearer_identity(self) -> Identity | None:
            header = self.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() not in ("bearer", "token"):
                return None
            return provider_ref[0].tokens.get(token.strip())

        def do_POST(self) -> None:
            provider = provider_ref[0]
            parsed = urlparse(self.path)
            if parsed.path not in ("/login/oauth/access_token", "/token"):
                self._json(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            provider.token_requests.append(form)
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
            basic = self.headers.get("Authorization", "")
            if basic.lower().startswith("basic "):
                decoded = base64.b64decode(basic[6:]).decode()
                client_id, _, client_secret = decoded.partition(":")
            if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
                self._json(401, {"error": "invalid_client"})
                return
            grant = provider.grants.pop(form.get("code", ""), None)
            if grant is None or form.get("grant_type") != "authorization_code":
                self._json(400, {"error": "invalid_grant"})
                return
            if grant.redirect_uri != form.get("redirect_uri"):
                self._json(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
                return
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if grant.method != "S256" or not secrets.compare_digest(expected, grant.challenge):
                self._json(400, {"error": "invalid_grant", "error_description": "PKCE"})
                return
            access = secrets.token_urlsafe(24)
            provider.tokens[access] = grant.identity
            body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "scope": ""}
            if parsed.path == "/token":
                body["id_token"] = provider.id_token(grant)
                body["expires_in"] = 3600
            self._json(200, body)

    return Handler


def start_fake_oauth() -> FakeOAuthProvider:
    provider_ref: list[FakeOAuthProvider] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider_ref))
    provider = FakeOAuthProvider(server=server)
    provider.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider_ref.append(provider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return provider
