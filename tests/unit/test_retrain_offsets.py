"""The log offsets a version records (``log_offsets.json``) and where the next read starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from recstream.artifacts import ArtifactError, read_manifest, write_manifest
from recstream.retrain import OFFSETS_FILE, LogOffsets, recorded_offsets, start_offsets


def test_offsets_round_trip_through_json() -> None:
    offsets = LogOffsets("events", {1: 7, 0: 12})
    assert LogOffsets.from_json(offsets.to_json()) == offsets
    assert b'"0": 12' in offsets.to_json()  # partitions as JSON keys, sorted


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b'{"topic": "e"}', b'{"topic": 1, "end": {}}', b'{"topic": "e", "end": {"0": -1}}',
     b'{"topic": "e", "end": {"x": 1}}', b'{"topic": "e", "end": {"0": "5"}}'],
)  # fmt: skip
def test_unreadable_offsets_are_an_artifact_error(data: bytes) -> None:
    with pytest.raises(ArtifactError, match=OFFSETS_FILE):
        LogOffsets.from_json(data)


def _version(tmp_path: Path, offsets: LogOffsets | None) -> Path:
    (tmp_path / "weights").write_bytes(b"w")
    names = ["weights"]
    if offsets is not None:
        (tmp_path / OFFSETS_FILE).write_bytes(offsets.to_json())
        names.append(OFFSETS_FILE)
    write_manifest(tmp_path, names)
    return tmp_path


def test_recorded_offsets_are_verified_against_the_manifest(tmp_path: Path) -> None:
    version = _version(tmp_path, LogOffsets("events", {0: 3}))
    assert recorded_offsets(version) == LogOffsets("events", {0: 3})
    assert OFFSETS_FILE in read_manifest(version)["files"]
    (version / OFFSETS_FILE).write_bytes(LogOffsets("events", {0: 9}).to_json())
    with pytest.raises(ArtifactError, match="sha256"):
        recorded_offsets(version)


def test_a_version_trained_from_a_file_recorded_no_offsets(tmp_path: Path) -> None:
    assert recorded_offsets(_version(tmp_path, None)) is None


def test_start_after_the_recorded_offsets_else_at_the_beginning() -> None:
    begin, end = {0: 0, 1: 5, 2: 0, 3: 0}, {0: 10, 1: 20, 2: 4, 3: 6}
    assert start_offsets(None, "events", begin, end) == begin
    recorded = LogOffsets("events", {0: 8, 1: 2, 2: 9})
    # 0: continue; 1: retention dropped 2..4; 2: log shorter than recorded (recreated);
    # 3: a partition added since.
    assert start_offsets(recorded, "events", begin, end) == {0: 8, 1: 5, 2: 0, 3: 0}
    assert start_offsets(recorded, "other-topic", begin, end) == begin
