"""What every request gets at the edge: problem+json errors, request ids, limits, headers,
health, readiness and metrics."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from tests.integration.gateway_client import (
    SIGNING_KEY,
    assert_problem,
    bearer,
    gateway_config,
    register_and_login,
    running_gateway,
)


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    config = gateway_config(
        db_url, tmp_path / "blobs", max_body_bytes=4096, cors_allow_origins=["https://app.test"]
    )
    with running_gateway(config) as test_client:
        yield test_client


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["parts"] == {"database": "ok", "blob_store": "ok"}


def test_readiness_names_the_failing_part(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    config = gateway_config(
        f"postgresql+asyncpg://nobody@127.0.0.1:{dead_port}/none", tmp_path / "blobs"
    )
    with running_gateway(config) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["database"]
        assert ready.json()["parts"]["blob_store"] == "ok"
        # Liveness is not readiness: the process itself is fine.
        assert client.get("/healthz").status_code == 200


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/auth/login" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/api/auth/login", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ("post", "/api/auth/login", {"json": {"email": 42, "password": ["x"]}}, 422),
        ("post", "/api/auth/login", {"json": {"email": "a@b.c"}}, 422),
        ("post", "/api/auth/login", {"json": {"email": "a@b.c", "password": "x", "admin": True}}, 422),
        ("post", "/api/auth/register", {"json": [1, 2, 3]}, 422),
        ("post", "/api/auth/login", {"content": b"email=a&password=b", "headers": {"content-type": "application/x-www-form-urlencoded"}}, 415),
        ("get", "/no/such/route", {}, 404),
        ("delete", "/healthz", {}, 405),
        ("get", "/api/auth/me", {}, 401),
        ("get", "/api/auth/me", {"headers": {"Authorization": "Basic dXNlcjpwdw=="}}, 401),
        ("get", "/api/auth/me", {"headers": {"Authorization": "Bearer "}}, 401),
    ],
    ids=[
        "malformed-json", "wrong-types", "missing-field", "unknown-field", "not-an-object", "form-body",
        "unknown-route", "wrong-method", "no-token", "basic-auth", "empty-bearer",
    ],
)  # fmt: skip
def test_bad_input_gets_a_problem_never_a_500(
    client: TestClient, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    response = getattr(client, method)(path, **kwargs)
    assert_problem(response, status)


def test_an_oversized_body_is_refused_before_it_is_read(client: TestClient) -> None:
    body = json.dumps({"email": "a@example.com", "password": "x" * 10_000})
    declared = client.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert "4096" in str(assert_problem(declared, 413)["detail"])

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    streamed = client.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(streamed, 413)


def _forge(claims: dict[str, object], header: dict[str, object]) -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(claims)}."


def test_bad_tokens_are_401(client: TestClient) -> None:
    tokens = register_and_login(client)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    expired = jwt.encode(
        {**claims, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},
        SIGNING_KEY,
        algorithm="HS256",
    )
    tampered_claims = {**claims, "sub": "someone-else"}
    head, _, sig = tokens["access_token"].split(".")
    tampered = f"{head}.{_forge(tampered_claims, {}).split('.')[1]}.{sig}"
    alg_none = _forge(claims, {"alg": "none", "typ": "JWT"})
    wrong_key = jwt.encode(claims, "another-deployment-key-" + "1" * 32, algorithm="HS256")
    for token in (expired, tampered, alg_none, wrong_key, "garbage", tokens["refresh_token"]):
        response = client.get("/api/auth/me", headers=bearer(token))
        problem = assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert problem["title"] == "Unauthorized"
    assert "expired" in str(client.get("/api/auth/me", headers=bearer(expired)).json()["detail"])


def test_request_ids_are_generated_or_echoed(client: TestClient) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    assert client.get("/healthz").headers["x-request-id"] != generated
    echoed = client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    hostile = client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"
    missing = client.get("/nope", headers={"x-request-id": "trace-42"})
    assert missing.json()["request_id"] == "trace-42"


def test_security_headers_and_cors(client: TestClient) -> None:
    response = client.get("/healthz", headers={"Origin": "https://app.test"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["access-control-allow-origin"] == "https://app.test"
    foreign = client.get("/healthz", headers={"Origin": "https://evil.test"})
    assert "access-control-allow-origin" not in foreign.headers
    preflight = client.options(
        "/api/auth/login",
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    tokens = register_and_login(client)
    for _ in range(3):
        client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    client.get("/definitely/missing")
    text = client.get("/metrics").text
    assert (
        'vibecode_http_requests_total{method="GET",route="/api/auth/me",status="200"} 3.0' in text
    )
    assert 'route="<unmatched>",status="404"' in text
    assert "vibecode_http_request_duration_seconds_bucket" in text
    assert "/definitely/missing" not in text
