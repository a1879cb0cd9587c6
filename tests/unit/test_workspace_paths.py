"""Workspace path validation: hostile path families never validate; valid paths round-trip."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.workspace.api import InvalidPath
from actors.workspace.paths import MAX_COMPONENT_BYTES, MAX_PATH_BYTES, validate_path

_CONTROL = [chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]]

# Names made of safe characters: letters, digits, some punctuation, non-ASCII letters.
safe_char = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\\x00")
component = st.text(safe_char, min_size=1, max_size=40).filter(lambda c: c not in (".", ".."))
valid_path = st.lists(component, min_size=1, max_size=8).map("/".join)


@given(valid_path)
def test_valid_paths_round_trip(path: str) -> None:
    assert validate_path(path) == path


@given(st.lists(component, min_size=1, max_size=4), st.sampled_from([".", ".."]), st.integers(0, 4))
def test_dot_components_never_validate(parts: list[str], dots: str, at: int) -> None:
    parts.insert(min(at, len(parts)), dots)
    with pytest.raises(InvalidPath):
        validate_path("/".join(parts))


@given(valid_path, st.sampled_from(["//", "/../", "\\", "/./", "/.", "/.."]))
def test_absolute_paths_and_separator_tricks_never_validate(path: str, trick: str) -> None:
    for hostile in (
        "/" + path,
        path + "/",
        path.replace("/", "//") if "/" in path else path + "//x",
        trick + path,
        path + trick + "/x",
        path + trick,
        "../" + path,
        path.replace("/", "\\"),
    ):
        if hostile == path:
            continue
        with pytest.raises(InvalidPath):
            validate_path(hostile)


@given(valid_path, st.sampled_from(_CONTROL), st.integers(0, 100))
def test_control_characters_never_validate(path: str, control: str, at: int) -> None:
    at = min(at, len(path))
    with pytest.raises(InvalidPath):
        validate_path(path[:at] + control + path[at:])


@given(valid_path, st.integers(0xD800, 0xDFFF))
def test_lone_surrogates_never_validate(path: str, code: int) -> None:
    with pytest.raises(InvalidPath):
        validate_path(path + chr(code))


@given(st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=86))
def test_components_over_255_utf8_bytes_never_validate(name: str) -> None:
    assert len(name.encode()) > MAX_COMPONENT_BYTES  # 86 CJK characters are 258 bytes.
    with pytest.raises(InvalidPath):
        validate_path(f"dir/{name}")


@given(st.text(alphabet="/.\\\x00\x7f\x85abc:", max_size=30))
def test_anything_accepted_is_canonical(raw: str) -> None:
    """Whatever validates is relative, has plain components and no control characters."""
    try:
        path = validate_path(raw)
    except InvalidPath:
        return
    assert path == raw
    assert not path.startswith("/")
    assert all(part not in ("", ".", "..") for part in path.split("/"))
    assert not any(char in path for char in "\\\x00\x7f\x85")


def test_length_limits() -> None:
    assert validate_path("a" * MAX_COMPONENT_BYTES)
    with pytest.raises(InvalidPath):
        validate_path("a" * (MAX_COMPONENT_BYTES + 1))
    longest = "/".join(["a" * 204] * 5)
    assert len(longest.encode()) == MAX_PATH_BYTES
    assert validate_path(longest) == longest
    with pytest.raises(InvalidPath):
        validate_path(longest + "c")
    with pytest.raises(InvalidPath):
        validate_path("/".join(["é" * 100] * 6))  # 1205 bytes in 600 characters.


@pytest.mark.parametrize(
    "raw", ["", "/", ".", "..", "a/../b", "./a", "a/.", "a//b", "a/", "C:\\x", "a\x00b", "\x7f"]
)
def test_known_hostile_paths(raw: str) -> None:
    with pytest.raises(InvalidPath):
        validate_path(raw)


@pytest.mark.parametrize(
    "raw", ["README.md", "src/pkg/__init__.py", ".env", "a b/c d", "é/ü.txt", "...", "..a", "a.."]
)
def test_ordinary_paths(raw: str) -> None:
    assert validate_path(raw) == raw


def test_non_strings_are_refused_and_the_error_pickles() -> None:
    with pytest.raises(InvalidPath) as caught:
        validate_path(b"a.txt")  # type: ignore[arg-type]
    again = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(again, InvalidPath)
    assert again.detail == caught.value.detail
