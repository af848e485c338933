"""Hot swap decisions: which announcement to act on, where its files are, what is refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from recstream.artifacts import sha256_file, version_sha256, write_manifest
from recstream.streams.recommender import NoModel
from recstream.streams.records import ModelUpdate
from recstream.streams.swap import (
    SwapError,
    artifact_dir,
    candidates,
    check_manifest,
    is_newer,
    load_update,
    parse_update,
)


def update(version: str, path: str = "/nowhere", sha: str = "0" * 64) -> ModelUpdate:
    return ModelUpdate(version=version, path=path, sha256=sha)


def test_versions_compare_by_number() -> None:
    assert is_newer("v10", "v9")
    assert not is_newer("v9", "v10")
    assert not is_newer("v3", "v3")
    assert is_newer("v1", "none")
    assert not is_newer("latest", "v1")


def test_candidates_newest_first_and_only_newer() -> None:
    ups = [update("v1"), update("v3"), update("v2"), update("v3", "/again")]
    picked = candidates(ups, "v1")
    assert [u.version for u in picked] == ["v3", "v2"]
    assert picked[0].path == "/again"  # the last announcement of a version wins
    assert candidates(ups, "v3") == []


def test_parse_update_refuses_garbage() -> None:
    assert parse_update(update("v2").model_dump_json().encode()).version == "v2"
    for raw in (None, b"", b"{", b'{"version": "v2"}'):
        with pytest.raises(SwapError):
            parse_update(raw)


def version_dir(root: Path, name: str) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text(json.dumps({"files": {}}))
    return directory


def test_artifact_dir_falls_back_to_the_local_root(tmp_path: Path) -> None:
    v2 = version_dir(tmp_path, "v2")
    assert artifact_dir(update("v2", str(v2)), tmp_path / "elsewhere") == v2
    assert artifact_dir(update("v2", "/mnt/other/v2"), tmp_path) == v2


def test_manifest_sha_must_match(tmp_path: Path) -> None:
    v2 = version_dir(tmp_path, "v2")
    check_manifest(v2, sha256_file(v2 / "manifest.json"))
    with pytest.raises(SwapError, match="differs"):
        check_manifest(v2, "0" * 64)
    with pytest.raises(SwapError, match="no manifest"):
        check_manifest(tmp_path / "v9", "0" * 64)


def test_load_update_checks_then_loads_and_refuses_a_wrong_version(tmp_path: Path) -> None:
    v2 = version_dir(tmp_path, "v2")
    good = update("v2", str(v2), sha256_file(v2 / "manifest.json"))
    loaded: list[Path] = []

    class Fake(NoModel):
        version = "v2"

    def load(path: Path) -> Fake:
        loaded.append(path)
        return Fake()

    assert asyncio.run(load_update(good, tmp_path, load)).version == "v2"
    assert loaded == [v2]
    with pytest.raises(SwapError, match="not the announced"):
        asyncio.run(load_update(good, tmp_path, lambda p: NoModel()))
    with pytest.raises(SwapError):
        asyncio.run(load_update(update("v2", str(v2)), tmp_path, load))
    assert loaded == [v2]  # a bad sha never reaches the loader


def test_the_whole_version_sha_covers_the_index_generation(tmp_path: Path) -> None:
    v2 = version_dir(tmp_path, "v2")
    manifest = sha256_file(v2 / "manifest.json")
    without_index = version_sha256(v2)
    for generation in ("index.1", "index.2"):
        (v2 / generation).mkdir()
        write_manifest(v2 / generation, [], kind="recstream-index", generation=generation)
    (v2 / "index").symlink_to("index.1")
    whole = version_sha256(v2)
    assert whole != without_index
    check_manifest(v2, manifest, whole)
    (v2 / "index").unlink()
    (v2 / "index").symlink_to("index.2")  # another index, each file true to its manifest
    check_manifest(v2, manifest)  # an old announcement (no whole sha) cannot tell
    with pytest.raises(SwapError, match="its index or a manifest changed"):
        check_manifest(v2, manifest, whole)
