"""Running the `vibecode` CLI as a user would, against the session's Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def vibecode(
    *args: str, env: dict[str, str], timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def clean_environment() -> dict[str, str]:
    """This process's environment without any VIBECODE_ setting that could leak in."""
    return {name: value for name, value in os.environ.items() if not name.startswith("VIBECODE_")}


def platform_environment(
    *, ray_address: str, serve_port: int, db_url: str, data_dir: Path
) -> dict[str, str]:
    env = clean_environment()
    env.update(
        {
            "RAY_ADDRESS": ray_address,
            "VIBECODE_PORT": str(serve_port),
            "VIBECODE_DATA_DIR": str(data_dir),
            "VIBECODE_DB__URL": db_url,
            "PYTHONPATH": str(ROOT),
        }
    )
    return env
