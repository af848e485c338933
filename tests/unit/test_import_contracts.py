"""The import contracts in pyproject.toml catch a wrong import: a copy of the package in which
streams/ reads the settings (configuration must reach it as constructor arguments) fails
lint-imports, naming the broken layer contract. scripts/check runs the real thing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _view(into: Path) -> Path:
    """The installed layout, as scripts/check builds it."""
    package = into / "recstream"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "recstream", package, ignore=ignore)
    for room in ("streams", "model", "index"):
        shutil.copytree(ROOT / room, package / room, ignore=ignore)
    return package


def test_a_wrong_import_breaks_the_layer_contract(tmp_path: Path) -> None:
    package = _view(tmp_path)
    state = package / "streams" / "state.py"
    state.write_text(state.read_text() + "\nfrom recstream.settings import Settings  # noqa\n")
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "BROKEN" in out and "recstream.streams.state -> recstream.settings" in out, out


def test_the_repository_has_no_symlinks() -> None:
    """Packaging maps the folders (pyproject's package-dir); a link breaks checkouts and tools
    that do not follow links."""
    listed = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    links = [line.split("\t", 1)[1] for line in listed if line.startswith("120000")]
    assert not links, f"symlinks in the repository: {links}"
