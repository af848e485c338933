"""docker-compose.yml parses and declares the services the README promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compose(*args: str) -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose (Debian's parser) is not installed; ./scripts/test installs it")
    out = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_compose_file_is_valid() -> None:
    compose("-q")


def test_compose_declares_the_whole_loop() -> None:
    services = {"kafka", "redis", "trainer", "worker", "simulator", "retrainer", "dashboard"}
    assert set(compose("--services").split()) >= services
    assert set(compose("--volumes").split()) >= {"redis-data", "kafka-data"}
    rendered = compose()
    assert "image: apache/kafka:" in rendered
    assert "image: redis:7" in rendered
    assert "--appendonly" in rendered
