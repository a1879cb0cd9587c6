"""The y-protocols wire format, byte for byte as the JavaScript reference (yjs, y-protocols)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.awareness import AwarenessEntry, AwarenessStates, decode_awareness
from collab.document import TextDocument
from collab.errors import MalformedMessage
from collab.protocol import (
    AUTH,
    AWARENESS,
    SYNC,
    SyncType,
    decode_message,
    encode_awareness,
    encode_permission_denied,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
    read_var_uint,
    write_var_uint,
)

# Printed by tests/node/vectors.mjs (yjs 13.6, y-protocols 1.0): a document of client 123456
# holding "héllo 😀" in getText("content"), and user "ada" with cursor 300 in its awareness.
JS = {
    "state_vector": "01c0c40708",
    "update": "0101c0c40700040107636f6e74656e740b68c3a96c6c6f20f09f988000",
    "step1": "00000501c0c40708",
    "step2": "00011d0101c0c40700040107636f6e74656e740b68c3a96c6c6f20f09f988000",
    "update_message": "00021d0101c0c40700040107636f6e74656e740b68c3a96c6c6f20f09f988000",
    "awareness_message": "012a01c0c40701247b2275736572223a7b226e616d65223a22616461227d2c22637572736f72223a3330307d",
    "denied": "020009726561642d6f6e6c79",
}


def test_varuints_match_lib0() -> None:
    assert write_var_uint(0) == b"\x00"
    assert write_var_uint(127) == b"\x7f"
    assert write_var_uint(128) == b"\x80\x01"
    assert write_var_uint(123456) == bytes.fromhex("c0c407")
    assert read_var_uint(bytes.fromhex("c0c407"), 0) == (123456, 3)


@given(st.integers(min_value=0, max_value=2**53))
def test_varuints_round_trip(value: int) -> None:
    encoded = write_var_uint(value)
    assert read_var_uint(encoded, 0) == (value, len(encoded))


def test_a_python_document_encodes_exactly_as_yjs() -> None:
    doc = TextDocument(client_id=123456)
    doc.insert(0, "héllo 😀")
    assert doc.state_vector().hex() == JS["state_vector"]
    assert doc.encode_state().hex() == JS["update"]
    assert encode_sync_step1(doc.state_vector()).hex() == JS["step1"]
    assert encode_sync_step2(doc.encode_state()).hex() == JS["step2"]
    assert encode_update(doc.encode_state()).hex() == JS["update_message"]


def test_messages_from_yjs_decode() -> None:
    step1 = decode_message(bytes.fromhex(JS["step1"]))
    assert (step1.kind, step1.sync_type, step1.payload.hex()) == (
        SYNC,
        SyncType.STEP1,
        JS["state_vector"],
    )
    update = decode_message(bytes.fromhex(JS["update_message"]))
    assert update.sync_type == SyncType.UPDATE
    doc = TextDocument()
    doc.apply_update(update.payload)
    assert doc.text == "héllo 😀"
    awareness = decode_message(bytes.fromhex(JS["awareness_message"]))
    assert awareness.kind == AWARENESS
    [entry] = decode_awareness(awareness.payload)
    assert entry == AwarenessEntry(123456, 1, {"user": {"name": "ada"}, "cursor": 300})
    denied = decode_message(bytes.fromhex(JS["denied"]))
    assert (denied.kind, denied.payload) == (AUTH, b"read-only")


def test_our_awareness_and_denial_encode_as_yjs() -> None:
    states = AwarenessStates()
    update = bytes.fromhex(JS["awareness_message"])[2:]
    assert states.apply(update)
    assert encode_awareness(states.encode()).hex() == JS["awareness_message"]
    assert encode_permission_denied("read-only").hex() == JS["denied"]


def test_awareness_keeps_the_newest_clock_and_forgets_leavers() -> None:
    states = AwarenessStates()
    from collab.awareness import encode_awareness_update

    states.apply(encode_awareness_update([AwarenessEntry(7, 2, {"cursor": 1})]))
    assert not states.apply(encode_awareness_update([AwarenessEntry(7, 1, {"cursor": 0})]))
    assert states.states() == {7: {"cursor": 1}}
    gone = states.remove({7})
    assert gone is not None
    assert decode_awareness(gone) == [AwarenessEntry(7, 3, None)]
    assert states.states() == {}


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00", b"\x00\x00\x05\x01", b"\x09", b"\x00\x07\x00", b"\xff" * 11],
)
def test_malformed_messages_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_message(raw)
