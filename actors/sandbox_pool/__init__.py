"""SandboxPool: the warm sandboxes of one node, leased to workspaces (plain Python, no Ray).

The Ray shell (``actor.py``: the ``SandboxPool`` actor and ``RaySandboxLeaser``) is not
imported here, so importing the package never imports Ray.
"""

from __future__ import annotations

from actors.sandbox_pool.core import PoolStats, SandboxPoolCore
from actors.sandbox_pool.lease import Lease, LeaseExpired, SandboxLeaser, UnavailableLeaser

__all__ = [
    "Lease",
    "LeaseExpired",
    "PoolStats",
    "SandboxLeaser",
    "SandboxPoolCore",
    "UnavailableLeaser",
]
