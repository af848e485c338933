"""Without the `train` extra (torch, onnx) the CLI still loads, and a command that needs it
says how to install it instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HIDE = "import sys\nsys.modules.update(dict.fromkeys(('torch', 'onnx')))\n"


def recstream_without_training(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = HIDE + "from recstream.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_help_loads_without_torch(tmp_path: Path) -> None:
    done = recstream_without_training("--help", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "worker" in done.stdout and "train" in done.stdout


def test_train_without_torch_names_the_extra(tmp_path: Path) -> None:
    data = tmp_path / "log.csv"
    data.write_text("user,item\nu1,i1\nu1,i2\n")
    done = recstream_without_training(
        "train", "--data", str(data), "--out", str(tmp_path / "out"), tmp_path=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'recstream[train]'" in done.stderr
    assert "Traceback" not in done.stderr
