"""Deploys the platform on a private local Ray, the way ``vibecode up`` does, until stdin closes.

Run as a child of ``bench/gateway.py`` so that Serve's environment-driven constants (HAProxy on or
off, its thread count ...) are read fresh for each variant and nothing leaks into the bench's own
process. ``--ingress haproxy`` uses ``cluster.ray_bootstrap.haproxy_environment``; ``proxy`` is
Serve's Python proxy. Everything else comes from ``load_settings`` and the environment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

# The repository first: this folder's sandbox.py (a bench script) must not shadow the `sandbox`
# package, here or in the Ray workers that inherit this sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ingress", choices=["haproxy", "proxy"], required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)

    # Short paths: Ray's and HAProxy's Unix sockets must stay under the 107-byte limit.
    scratch = Path(tempfile.mkdtemp(prefix="vc-b-"))
    try:
        _serve(args.data_dir, args.port, args.ingress, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _serve(data_dir: Path, port: int, ingress: str, scratch: Path) -> None:
    if ingress == "haproxy":
        from cluster.ray_bootstrap import haproxy_environment

        environment = haproxy_environment(scratch / "hap")
        if not environment:
            raise SystemExit("haproxy is not installed")
        # Explicit values from the caller (say RAY_SERVE_HAPROXY_NBTHREAD) win over ours.
        os.environ.update({k: v for k, v in environment.items() if k not in os.environ})
    else:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "0"

    import ray
    from ray import serve

    from cluster.logging import configure_logging
    from cluster.serve_app import APP_NAME, build_application
    from cluster.settings import load_settings

    settings = load_settings(data_dir=data_dir, port=port)
    configure_logging(settings.log, production=settings.environment == "production")
    ray.init(
        address="local",
        namespace=settings.ray.namespace,
        include_dashboard=False,
        num_cpus=settings.ray.num_cpus,
        log_to_driver=False,
        _temp_dir=str(scratch / "ray"),
    )
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_application(settings), name=APP_NAME, route_prefix="/")
        print("deployed", flush=True)
        sys.stdin.read()  # the bench closes our stdin when it is done
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
