# TEMPORARY (helper's stress loop; deleted before handing back).
import asyncio
import os
from pathlib import Path

import pytest

from tests.integration import test_collab_faults as faults
from tests.integration import collab_harness

pytestmark = [
    pytest.mark.ray,
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True),
]

_orig = collab_harness.wait_converged


async def _diag(clients, timeout_s=20):
    try:
        return await _orig(clients, timeout_s)
    except AssertionError:
        from collab.document import TextDocument
        for i, c in enumerate(clients):
            print("CLIENT", i, "id", c.doc._doc.client_id, "sv", c.doc.state_vector().hex(), "sent", c.sent, "acked", c.acked)
        for i, c in enumerate(clients):
            probe = TextDocument()
            for other in clients:
                probe.apply_update(other.doc.encode_state())
            print("merged text == ", i, probe.text == c.text)
        t0 = _LOG[0][0] if _LOG else 0
        for e in _LOG:
            print("EV", round(e[0]-t0, 3), *e[1:])
        raise


faults.wait_converged = _diag

import time as _time
import pycrdt as _pycrdt
from collab.protocol import decode_message as _dm, SYNC as _SYNC
from collab.protocol import read_var_uint as _rvu

def _svd(b):
    n, o = _rvu(b, 0); out = {}
    for _ in range(n):
        c, o = _rvu(b, o); k, o = _rvu(b, o); out[c % 1000] = k
    return out

_LOG = []
_orig_handle = collab_harness.YClient._handle
async def _handle(self, raw):
    m = _dm(raw)
    if m.kind == _SYNC and m.sync_type != 0:
        before = _svd(self.doc.state_vector())
        await _orig_handle(self, raw)
        _LOG.append((_time.monotonic(), "recv", self.doc._doc.client_id % 1000, m.sync_type, _svd(_pycrdt.get_state(m.payload)), before, _svd(self.doc.state_vector())))
        return
    await _orig_handle(self, raw)
collab_harness.YClient._handle = _handle
_orig_send = collab_harness.YClient._send_update
async def _send(self, update):
    if update is not None:
        _LOG.append((_time.monotonic(), "send", self.doc._doc.client_id % 1000, _svd(_pycrdt.get_state(update))))
    await _orig_send(self, update)
collab_harness.YClient._send_update = _send


@pytest.mark.parametrize("attempt", range(int(os.environ.get("STRESS_N", "20"))))
async def test_stress(attempt: int, ray_address: str, db_url: str, tmp_path: Path) -> None:
    _LOG.clear()
    await faults.test_the_workspace_host_killed_mid_edit_loses_no_acknowledged_edit(
        ray_address, db_url, tmp_path
    )
