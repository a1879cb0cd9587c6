"""The docker sandbox's base image, built locally: no registry is reachable from our machines.

``debootstrap --variant=minbase --include=python3,python-is-python3`` makes a Debian bookworm rootfs from the
mirror apt already uses; the rootfs is tarred into a cache directory under a name keyed by a
hash of the recipe, so reruns on the same machine (developers, CI) skip the ~90 s build, and
``docker import`` turns the tarball into ``vibecode-sandbox:<hash>`` in whichever daemon asks.

Run ``python -m tests.harness.sandbox_image`` to build (or find) the tarball ahead of time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["IMAGE_REPOSITORY", "build_rootfs_tarball", "debian_mirror", "image_tag", "recipe"]

IMAGE_REPOSITORY = "vibecode-sandbox"
SUITE = "bookworm"
PACKAGES = ("python3", "python-is-python3")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE_DIR = Path(os.environ.get("VIBECODE_SANDBOX_CACHE", "/var/cache/vibecode-sandbox"))
# Trimmed from the rootfs: package caches and docs nobody in a sandbox needs.
PRUNE = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")


def debian_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 ``.sources`` or one-line lists)."""
    candidates = sorted(sources_dir.glob("sources.list.d/*.sources"))
    candidates += [sources_dir / "sources.list", *sorted(sources_dir.glob("sources.list.d/*.list"))]
    for path in candidates:
        try:
            text = path.read_text()
        except (FileNotFoundError, PermissionError):
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("#"):
                continue
            match = re.match(r"^URIs:\s*(\S+)", line) or re.match(
                r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line
            )
            if match and match.group(1).rstrip("/").endswith("/debian"):
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def recipe() -> dict[str, object]:
    """Everything that decides the rootfs contents; its hash names the tarball and the tag.

    The mirror is left out on purpose: any mirror serves the same suite."""
    return {"suite": SUITE, "variant": "minbase", "packages": list(PACKAGES), "prune": list(PRUNE)}


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:12]


def image_tag() -> str:
    return f"{IMAGE_REPOSITORY}:{recipe_hash()}"


def build_rootfs_tarball(cache_dir: Path = CACHE_DIR) -> Path:
    """Path of the cached rootfs tarball, building it first when it is missing (~90 s).

    Raises ``FileNotFoundError`` when debootstrap is not installed and
    ``subprocess.CalledProcessError`` when the build fails."""
    tarball = cache_dir / f"rootfs-{recipe_hash()}.tar"
    if tarball.exists():
        return tarball
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise FileNotFoundError("debootstrap is not installed (apt-get install debootstrap)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache_dir) as work:
        rootfs = Path(work) / "rootfs"
        subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=900,
        )
        for relative in PRUNE:
            target = rootfs / relative
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        partial = Path(work) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            check=True,
            timeout=300,
        )
        partial.rename(tarball)  # Atomic: a concurrent run never sees half a tarball.
    return tarball


if __name__ == "__main__":
    print(build_rootfs_tarball())
