"""Workspace templates: the files they start with, and the python template's test passes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from actors.workspace.catalog import InvalidWorkspaceName, clean_name
from actors.workspace.paths import validate_path
from actors.workspace.templates import TEMPLATES, UnknownTemplate, package_name, template_files


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_has_valid_paths_and_a_readme(template: str) -> None:
    files = template_files(template, name="Demo <App>")
    assert "README.md" in files
    for path in files:
        assert validate_path(path) == path


def test_static_web_escapes_the_name() -> None:
    page = template_files("static-web", name="<script>x</script>")["index.html"]
    assert b"<script>x</script>" not in page
    assert b"&lt;script&gt;" in page


@pytest.mark.parametrize(
    ("name", "expected"),
    [("My Project", "my_project"), ("123 go!", "go"), ("class", "app"), ("!!!", "app")],
)
def test_package_names_are_identifiers(name: str, expected: str) -> None:
    assert package_name(name) == expected
    assert package_name(name).isidentifier()


@pytest.mark.parametrize("runner", [["unittest"], ["pytest", "-q", "-p", "no:cacheprovider"]])
def test_the_python_template_passes_its_own_test(tmp_path: Path, runner: list[str]) -> None:
    for path, data in template_files("python", name="Hello World").items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-m", *runner],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_templates_and_bad_names_are_domain_errors_that_pickle() -> None:
    with pytest.raises(UnknownTemplate) as unknown:
        template_files("rust", name="x")
    copy = pickle.loads(pickle.dumps(unknown.value))
    assert copy.template == "rust"
    assert copy.detail == unknown.value.detail
    assert "blank" in copy.detail
    assert clean_name("  ok  ") == "ok"
    for bad in ("", "   ", "x" * 201, "tab\there"):
        with pytest.raises(InvalidWorkspaceName):
            clean_name(bad)
