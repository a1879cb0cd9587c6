"""Sandbox library values, errors and settings: validation at the edge, pickling for Ray."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from sandbox import (
    BubblewrapSettings,
    ExecRequest,
    FakeSettings,
    ProcessNotFound,
    SandboxCrashed,
    SandboxCreateFailed,
    SandboxError,
    SandboxLimitInvalid,
    SandboxNotFound,
    SandboxProtocolError,
    SandboxSettings,
    SandboxUnavailable,
    StartRequest,
    open_backend,
)
from sandbox.fake import FakeBackend

ERRORS = [
    SandboxNotFound("sbx-1"),
    ProcessNotFound("sbx-1", "p2"),
    SandboxCreateFailed("bubblewrap", "no bwrap"),
    SandboxCrashed("sbx-1", "exited"),
    SandboxProtocolError("sbx-1", "bad frame"),
    SandboxLimitInvalid("network", True, "disabled"),
    SandboxUnavailable("bubblewrap", "not root"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_round_trip(error: SandboxError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
    assert isinstance(copy, SandboxError)


def test_requests_need_exactly_one_command() -> None:
    with pytest.raises(ValidationError):
        ExecRequest()
    with pytest.raises(ValidationError):
        ExecRequest(argv=("ls",), shell="ls")
    with pytest.raises(ValidationError):
        ExecRequest(argv=())
    assert ExecRequest(shell="ls -l").command() == ["/bin/sh", "-c", "ls -l"]
    assert StartRequest(argv=("npm", "start")).command() == ["npm", "start"]


@pytest.mark.parametrize(
    ("cwd", "relative"),
    [(".", "."), ("src", "src"), ("/workspace/src/app", "src/app"), ("a/../b", "b")],
)
def test_cwd_resolves_under_the_workspace(cwd: str, relative: str) -> None:
    assert ExecRequest(argv=("ls",), cwd=cwd).relative_cwd() == relative


@pytest.mark.parametrize("cwd", ["..", "/etc", "src/../../x", "/workspace2"])
def test_cwd_cannot_leave_the_workspace(cwd: str) -> None:
    with pytest.raises(ValidationError):
        ExecRequest(argv=("ls",), cwd=cwd)


def test_settings_default_to_hardened_bubblewrap() -> None:
    settings = SandboxSettings()
    assert isinstance(settings.backend, BubblewrapSettings)
    assert settings.backend.sandbox_uid >= 1000
    assert not settings.backend.allow_network
    with pytest.raises(ValidationError):
        BubblewrapSettings(sandbox_uid=0)


def test_fake_backend_is_refused_unless_explicitly_unisolated() -> None:
    with pytest.raises(ValidationError):
        SandboxSettings.model_validate({"backend": {"kind": "fake"}})
    settings = SandboxSettings.model_validate(
        {"backend": {"kind": "fake", "allow_unisolated": True}}
    )
    assert isinstance(settings.backend, FakeSettings)
    assert isinstance(open_backend(settings), FakeBackend)


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValidationError):
        SandboxSettings.model_validate({"default_limits": {"memory_bytes": 1}})
    with pytest.raises(ValidationError):
        SandboxSettings.model_validate({"default_limits": {"exec_timeout_s": 0}})
