"""The root settings: embedded defaults need nothing; production refuses unsafe values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cluster.settings import Settings, load_settings
from state.settings import LocalBlobSettings, S3BlobSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VIBECODE_") or name == "RAY_ADDRESS":
            monkeypatch.delenv(name)


def test_embedded_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'vibecode.db'}"
    assert isinstance(settings.blob, LocalBlobSettings)
    assert settings.blob.root == tmp_path / "data" / "blobs"
    assert settings.redis.url is None
    assert settings.ray_address is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_the_development_signing_key_is_kept_across_restarts(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path).auth.jwt_secret
    second = load_settings(data_dir=tmp_path).auth.jwt_secret
    assert first is not None
    assert second is not None
    assert first.get_secret_value() == second.get_secret_value()
    assert (tmp_path / "jwt.key").stat().st_mode & 0o077 == 0


def test_production_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIBECODE_ENVIRONMENT", "production")
    monkeypatch.setenv("VIBECODE_DB__URL", "postgresql+asyncpg://u:p@db/vibecode")
    monkeypatch.setenv("VIBECODE_REDIS__URL", "redis://redis:6379/0")
    monkeypatch.setenv("VIBECODE_BLOB__BACKEND", "s3")
    monkeypatch.setenv("VIBECODE_BLOB__BUCKET", "vibecode")
    monkeypatch.setenv("VIBECODE_AUTH__JWT_SECRET", "s" * 40)
    monkeypatch.setenv("VIBECODE_SECRETS__KEYS", '["k1:' + "A" * 43 + '="]')
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("VIBECODE_PORT", "9000")
    settings = Settings()
    assert isinstance(settings.blob, S3BlobSettings)
    assert settings.blob.bucket == "vibecode"
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.ray_address == "ray://head:10001"
    assert settings.port == 9000
    assert [key.get_secret_value()[:3] for key in settings.secrets.keys] == ["k1:"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VIBECODE_AUTH__JWT_SECRET": "changeme"}, "JWT_SECRET"),
        ({"VIBECODE_AUTH__JWT_SECRET": "short"}, "at least 32"),
        ({"VIBECODE_AUTH__JWT_SECRET": "s" * 40, "VIBECODE_DB__URL": ""}, "PostgreSQL"),
        (
            {"VIBECODE_AUTH__JWT_SECRET": "s" * 40, "VIBECODE_DB__URL": "postgresql://h/db"},
            "SECRETS__KEYS",
        ),
    ],
)
def test_production_refuses_placeholders(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("VIBECODE_ENVIRONMENT", "production")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()
