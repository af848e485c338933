"""``simulate --follow``: between rounds, wait for a version another process publishes."""

from __future__ import annotations

from pathlib import Path

from recstream.cli_sim import _follow_between_rounds


def test_follow_waits_for_a_newer_version_and_gives_up_after_the_timeout(tmp_path: Path) -> None:
    lines: list[str] = []
    between = _follow_between_rounds(tmp_path, 0.05, lines.append)
    assert between(0) is None  # nothing published yet: carry on with the served model
    (tmp_path / "v1").mkdir()
    assert between(0) == "v1"  # after the warm-up any version will do
    assert between(1) is None  # no newer version within the timeout
    (tmp_path / "v2").mkdir()
    assert between(2) == "v2"
    assert any("no new version" in line for line in lines)
