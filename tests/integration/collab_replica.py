"""A gateway replica as its own process: ``python -m tests.integration.collab_replica <json>``.

Sessions live in Ray's WorkspaceHost actors (shared by every replica), fan-out goes through
Redis: the shape of a multi-replica deployment, without Serve's proxy in front.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import uvicorn


def main() -> None:
    spec = json.loads(sys.argv[1])
    import ray

    from actors.kv_bus import RayKeyValueStore
    from actors.workspace.actor import HostConfig
    from actors.workspace.api import WorkspaceWriter
    from actors.workspace.ray_writer import RayWorkspaceWriter
    from serve_apps.gateway.app import build_app
    from serve_apps.gateway.services import WriterContext
    from tests.integration.gateway_client import gateway_config

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address=spec["ray"], namespace=spec["namespace"], log_to_driver=False)
    config = gateway_config(spec["db"], Path(spec["blobs"]), redis_url=spec["redis"])
    config = config.model_copy(
        update={"workspace": config.workspace.model_copy(update=spec["workspace"])}
    )

    async def ray_writer(context: WriterContext) -> WorkspaceWriter:
        host_config = HostConfig(
            db=context.config.db,
            blob=context.config.blob,
            workspace=context.config.workspace,
            redis=context.config.redis,
        )
        return RayWorkspaceWriter(host_config, namespace=spec["namespace"])

    # As the Serve deployment does: without Redis the realtime channel is the kv-bus actor.
    app = build_app(
        config,
        writer_factory=ray_writer,
        realtime_kv_factory=lambda: RayKeyValueStore(spec["namespace"]),
    )
    uvicorn.run(
        app, host="127.0.0.1", port=spec["port"], log_level="warning", ws="websockets-sansio"
    )


if __name__ == "__main__":
    main()
