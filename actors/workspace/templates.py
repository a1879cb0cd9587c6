"""The starting file sets of new workspaces: ``blank``, ``python`` and ``static-web``.

Each template is a plain ``path -> bytes`` mapping, written as the workspace's first version.
The python template's test passes with ``python3 -m unittest`` alone (no pytest needed), and
with ``python3 -m pytest`` too.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable

from actors.workspace.api import WorkspaceError

__all__ = ["DEFAULT_TEMPLATE", "TEMPLATES", "UnknownTemplate", "package_name", "template_files"]

DEFAULT_TEMPLATE = "blank"


class UnknownTemplate(WorkspaceError):
    """A template name that is not one of ``TEMPLATES``."""

    def __init__(self, template: str) -> None:
        super().__init__(
            f"Unknown template {template[:80]!r}; choose one of: {', '.join(sorted(TEMPLATES))}."
        )
        self.template = template

    def __reduce__(self) -> tuple[type[UnknownTemplate], tuple[str]]:
        return (type(self), (self.template,))


def package_name(name: str) -> str:
    """A valid, lowercase Python identifier derived from a workspace name (``app`` as fallback)."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    slug = re.sub(r"^[0-9_]+", "", slug)[:40].rstrip("_")
    if not slug or keyword.iskeyword(slug):
        return "app"
    return slug


def _readme(name: str, body: str) -> bytes:
    return f"# {name}\n\n{body}\n".encode()


def _blank(name: str) -> dict[str, str]:
    return {"README.md": _readme(name, "A new workspace.").decode()}


def _python(name: str) -> dict[str, str]:
    pkg = package_name(name)
    distribution = pkg.replace("_", "-")
    return {
        "README.md": _readme(
            name,
            f"A small Python package, `{pkg}`.\n\n"
            "Run the tests with `python3 -m unittest`\n"
            "(or `python3 -m pytest` where pytest is installed).",
        ).decode(),
        ".gitignore": "__pycache__/\n*.py[cod]\n.venv/\n*.egg-info/\nbuild/\ndist/\n"
        ".pytest_cache/\n",
        "pyproject.toml": (
            "[build-system]\n"
            'requires = ["setuptools>=68"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            "[project]\n"
            f'name = "{distribution}"\n'
            'version = "0.1.0"\n'
            'requires-python = ">=3.10"\n\n'
            "[tool.setuptools.packages.find]\n"
            'where = ["src"]\n\n'
            "[tool.pytest.ini_options]\n"
            'pythonpath = ["src"]\n'
            'testpaths = ["tests"]\n'
        ),
        f"src/{pkg}/__init__.py": (
            f'"""{pkg}: a starting point."""\n\n'
            '__all__ = ["greet"]\n\n\n'
            'def greet(name: str = "world") -> str:\n'
            '    """Return a friendly greeting for ``name``."""\n'
            '    return f"Hello, {name}!"\n'
        ),
        "tests/__init__.py": "",
        f"tests/test_{pkg}.py": (
            "import sys\n"
            "import unittest\n"
            "from pathlib import Path\n\n"
            "# Runs without installing the package: put src/ on the path.\n"
            'sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))\n\n'
            f"from {pkg} import greet  # noqa: E402\n\n\n"
            "class GreetTest(unittest.TestCase):\n"
            "    def test_default(self) -> None:\n"
            '        self.assertEqual(greet(), "Hello, world!")\n\n'
            "    def test_name(self) -> None:\n"
            '        self.assertEqual(greet("Ada"), "Hello, Ada!")\n\n\n'
            'if __name__ == "__main__":\n'
            "    unittest.main()\n"
        ),
    }


def _static_web(name: str) -> dict[str, str]:
    title = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "README.md": _readme(name, "A static web page: open `index.html` in a browser.").decode(),
        "index.html": (
            "<!doctype html>\n"
            '<html lang="en">\n'
            "<head>\n"
            '  <meta charset="utf-8">\n'
            '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"  <title>{title}</title>\n"
            '  <link rel="stylesheet" href="style.css">\n'
            "</head>\n"
            "<body>\n"
            f"  <h1>{title}</h1>\n"
            '  <p id="message">Hello!</p>\n'
            '  <button id="greet" type="button">Greet</button>\n'
            '  <script src="script.js"></script>\n'
            "</body>\n"
            "</html>\n"
        ),
        "style.css": (
            "body {\n"
            "  font-family: system-ui, sans-serif;\n"
            "  max-width: 40rem;\n"
            "  margin: 3rem auto;\n"
            "  padding: 0 1rem;\n"
            "}\n"
        ),
        "script.js": (
            'document.getElementById("greet").addEventListener("click", () => {\n'
            '  document.getElementById("message").textContent = "Hello, world!";\n'
            "});\n"
        ),
    }


_BUILDERS: dict[str, Callable[[str], dict[str, str]]] = {
    "blank": _blank,
    "python": _python,
    "static-web": _static_web,
}
TEMPLATES = frozenset(_BUILDERS)


def template_files(template: str, *, name: str) -> dict[str, bytes]:
    """The files of a new workspace called ``name``; raise ``UnknownTemplate`` for others."""
    builder = _BUILDERS.get(template)
    if builder is None:
        raise UnknownTemplate(template)
    return {path: text.encode() for path, text in builder(name).items()}
