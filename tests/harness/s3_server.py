"""A real S3-compatible server on loopback: SeaweedFS (``weed server -s3``), else moto.

SeaweedFS checks credentials and signatures like S3 does; moto's threaded server is the
fallback when the ``weed`` binary is missing or does not come up.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.harness.processes import free_port, stop_pid, track_pid, wait_until

__all__ = ["S3Server", "start_s3_server"]

REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    description: str
    bucket: str = ""  # created and warmed up at start
    region: str = REGION
    stop: Callable[[], None] | None = None
    _client: Any = None

    def client(self) -> Any:
        """A shared boto3 S3 client (thread-safe) with path-style addressing."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self.stop is not None:
            self.stop()


def start_s3_server(run_id: str) -> S3Server:
    weed = _find_weed()
    if weed is not None:
        try:
            return _start_seaweedfs(weed, run_id)
        except (OSError, TimeoutError, subprocess.SubprocessError) as exc:
            print(f"seaweedfs did not start ({exc}); falling back to moto", file=sys.stderr)
    return _start_moto(run_id)


def _find_weed() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


def _start_seaweedfs(weed: str, run_id: str) -> S3Server:
    workdir = Path(tempfile.mkdtemp(prefix=f"{run_id}-s3-"))
    access_key, secret_key = f"{run_id}-access", secrets.token_hex(16)
    (workdir / "s3.json").write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": run_id,
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    (workdir / "data").mkdir()
    services = ("master", "volume", "filer", "s3")
    ports = {name: free_port() for service in services for name in (service, f"{service}_grpc")}
    command = [
        weed,
        "-logtostderr",
        "server",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={workdir / 's3.json'}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=100",
    ]
    log = (workdir / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()

    def stop() -> None:
        try:
            stop_pid(process.pid, popen=process, grace_s=0.5)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            # weed puts its gRPC unix sockets in /tmp whatever TMPDIR says.
            for port in ports.values():
                for part in ("master", "volume", "filer", "s3", "admin"):
                    Path(f"/tmp/seaweedfs-{part}-grpc-{port}.sock").unlink(missing_ok=True)

    track_pid(process.pid, stop)
    version = subprocess.run([weed, "version"], capture_output=True, text=True).stdout.split()
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        access_key_id=access_key,
        secret_access_key=secret_key,
        description=f"seaweedfs {version[2] if len(version) > 2 else '?'} "
        f"at 127.0.0.1:{ports['s3']}",
        bucket=f"{run_id}-blobs",
        stop=stop,
    )
    try:
        client = server.client()
        wait_until(lambda: _writable(client, server.bucket), timeout_s=30, what="seaweedfs S3")
    except BaseException:
        stop()
        raise
    return server


def _writable(client: Any, bucket: str) -> bool:
    """True once a bucket can be created and an object written and read back."""
    try:
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in (
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            ):
                raise
        client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
        ok = client.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"probe"
        client.delete_object(Bucket=bucket, Key="probe")
        return bool(ok)
    except (ClientError, BotoCoreError):
        return False


def _start_moto(run_id: str) -> S3Server:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="testing",
        secret_access_key="testing",  # moto accepts any credentials
        description=f"moto at 127.0.0.1:{port}",
        bucket=f"{run_id}-blobs",
        stop=moto.stop,
    )
    server.client().create_bucket(Bucket=server.bucket)
    return server
