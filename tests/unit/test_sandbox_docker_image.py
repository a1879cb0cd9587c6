"""The sandbox image recipe: the mirror apt uses, and a tag that changes with the recipe."""

from __future__ import annotations

from pathlib import Path

from tests.harness.sandbox_image import DEFAULT_MIRROR, debian_mirror, image_tag, recipe


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# URIs: http://old.example/debian\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_one_line_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://m.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://m.example/debian"


def test_mirror_defaults_when_apt_has_none(tmp_path: Path) -> None:
    assert debian_mirror(tmp_path) == DEFAULT_MIRROR


def test_tag_names_the_recipe() -> None:
    assert image_tag().startswith("vibecode-sandbox:")
    assert "python3" in recipe()["packages"]  # type: ignore[operator]
