"""`vibecode up` deploys the platform on Ray Serve; a user signs in over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.harness.platform import clean_environment, vibecode


def test_up_serves_sign_in_and_data_survives_a_redeploy(
    platform_env: dict[str, str], serve_port: int
) -> None:
    started = vibecode("up", "--detach", env=platform_env)
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{serve_port}"
    assert url in started.stdout
    assert "HAProxy" in started.stdout

    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["parts"]["ray"] == "ok"
        creds = {"email": "grace@example.com", "password": "a long enough password"}
        assert http.post("/api/auth/register", json=creds).status_code == 201
        tokens = http.post("/api/auth/login", json=creds).json()
        me = http.get("/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.json()["email"] == "grace@example.com"
        missing = http.get("/nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")

    status = vibecode("status", env=platform_env, timeout_s=60)
    assert status.returncode == 0, status.stderr
    assert "database" in status.stdout

    # Redeploy (new replicas, same durable state): the account and its token still work.
    again = vibecode("up", "--detach", env=platform_env)
    assert again.returncode == 0, again.stderr
    with httpx.Client(base_url=url, timeout=10) as http:
        relogin = http.post("/api/auth/login", json=creds)
        assert relogin.status_code == 200
        me = http.get("/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 200


def test_bad_configuration_is_one_clear_line(tmp_path: Path) -> None:
    env = clean_environment()
    env.update({"VIBECODE_PORT": "not-a-port", "VIBECODE_DATA_DIR": str(tmp_path)})
    result = vibecode("db", "upgrade", env=env, timeout_s=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "port" in lines[0]
    assert "Traceback" not in result.stderr
