"""Text documents: minimal edits, convergence of concurrent edits, persistence round trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collab.document import TextDocument, text_edits
from collab.persistence import MemoryDocumentStore

_text = st.text(alphabet="ab é😀\n", max_size=40)


def _apply(old: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, replacement in edits:
        old = old[:start] + replacement + old[end:]
    return old


@given(_text, _text)
def test_text_edits_turn_old_into_new(old: str, new: str) -> None:
    assert _apply(old, text_edits(old, new)) == new


@given(_text, _text)
def test_set_text_makes_the_document_hold_the_new_text(old: str, new: str) -> None:
    doc = TextDocument()
    doc.set_text(old)
    doc.set_text(new)
    assert doc.text == new


def test_an_edit_elsewhere_keeps_a_concurrent_insert() -> None:
    base = TextDocument()
    base.set_text("line one\nline two\nline three\n")
    alice, bob = TextDocument(), TextDocument()
    alice.apply_update(base.encode_state())
    bob.apply_update(base.encode_state())
    from_alice = alice.insert(len("line one"), " (alice)")
    from_bob = bob.set_text("line one\nline 2\nline three\n")  # a file write, as a diff
    assert from_alice is not None
    assert from_bob is not None
    alice.apply_update(from_bob)
    bob.apply_update(from_alice)
    assert alice.text == bob.text == "line one (alice)\nline 2\nline three\n"


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.booleans(),
            st.floats(0, 1),
            st.text("xy😀", min_size=1, max_size=3),
        ),
        max_size=25,
    )
)
def test_concurrent_edits_converge_in_any_delivery_order(
    edits: list[tuple[int, bool, float, str]],
) -> None:
    docs = [TextDocument() for _ in range(3)]
    updates: list[bytes] = []
    for who, insert, where, value in edits:
        doc = docs[who]
        position = int(where * len(doc.text))
        update = doc.insert(position, value) if insert else doc.delete(position, len(value))
        if update is not None:
            updates.append(update)
    for doc in docs:
        for update in reversed(updates):  # out of order: Yjs keeps pending structs
            doc.apply_update(update)
    assert len({doc.text for doc in docs}) == 1


def test_reapplying_an_update_changes_nothing() -> None:
    doc = TextDocument()
    update = doc.insert(0, "hi")
    assert update is not None
    other = TextDocument()
    assert other.apply_update(update) is not None
    assert other.apply_update(update) is None


async def test_memory_store_keeps_snapshot_and_later_updates() -> None:
    store = MemoryDocumentStore()
    doc = TextDocument()
    updates = [u for u in (doc.insert(0, "a"), doc.insert(1, "b"), doc.insert(2, "c")) if u]
    for seq, update in enumerate(updates, start=1):
        await store.append("w", "f.txt", seq, update, synced=("sha",) if seq == 1 else None)
    await store.compact("w", "f.txt", doc.encode_state(), through_seq=2)
    stored = await store.load("w", "f.txt")
    assert stored is not None
    assert stored.snapshot_seq == 2
    assert [seq for seq, _ in stored.updates] == [3]
    assert stored.last_seq == 3
    assert stored.synced == ("sha",)
    again = TextDocument()
    assert stored.snapshot is not None
    again.apply_update(stored.snapshot)
    for _, update in stored.updates:
        again.apply_update(update)
    assert again.text == "abc"
    await store.delete("w", "f.txt")
    assert await store.load("w", "f.txt") is None
