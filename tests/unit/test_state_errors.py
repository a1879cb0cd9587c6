"""State errors cross process boundaries (Ray pickles them) intact."""

from __future__ import annotations

import pickle

import pytest

from state.errors import (
    BlobIntegrityError,
    BlobNotFound,
    InvalidDigest,
    MigrationError,
    StateError,
    StorageUnavailable,
)

DIGEST = "ab" * 32


@pytest.mark.parametrize(
    "error",
    [
        StateError("plain"),
        BlobNotFound(DIGEST),
        BlobIntegrityError(DIGEST, "cd" * 32),
        InvalidDigest("nope"),
        StorageUnavailable("redis", "connection refused"),
        MigrationError("multiple heads"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_survive_a_pickle_round_trip(error: StateError) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert copy.args == error.args
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_every_leaf_is_a_state_error_and_invalid_digest_is_a_value_error() -> None:
    for leaf in (
        BlobNotFound,
        BlobIntegrityError,
        InvalidDigest,
        StorageUnavailable,
        MigrationError,
    ):
        assert issubclass(leaf, StateError)
    assert issubclass(InvalidDigest, ValueError)


def test_messages_carry_the_domain_data() -> None:
    assert DIGEST in str(BlobNotFound(DIGEST))
    assert str(StorageUnavailable("database", "timeout")) == "database unavailable: timeout"
