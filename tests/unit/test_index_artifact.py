"""index/ artifacts: checksummed save/load, refusal of corrupt files, atomic publish and swap."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from recstream.artifacts import (
    ArtifactError,
    publish_version,
    staging_dir,
    write_manifest,
)
from recstream.index import ItemIndex, build, load, save
from recstream.index.synthetic import clustered_catalogue, user_queries

N, D = 3000, 16


def _model_version(root: Path, seed: int) -> Path:
    """Publish a model version the way model/ does: embeddings + ids + manifest, renamed in."""
    catalogue = clustered_catalogue(N, d=D, seed=seed)
    staged = staging_dir(root)
    np.save(staged / "item_embeddings.npy", catalogue.embeddings)
    (staged / "item_ids.json").write_text(json.dumps(catalogue.item_ids))
    write_manifest(staged, ["item_embeddings.npy", "item_ids.json"], dataset="synthetic")
    return publish_version(root, staged)


def _build_for(version: Path, kind: str = "IVF32,Flat") -> ItemIndex:
    embeddings = np.load(version / "item_embeddings.npy")
    ids = json.loads((version / "item_ids.json").read_text())
    return build(embeddings, ids, kind=kind, n_tuning=200)


QUERIES = user_queries(clustered_catalogue(N, d=D, seed=0), 16, seed=9)


@pytest.fixture
def published(tmp_path: Path) -> Path:
    version = _model_version(tmp_path, seed=0)
    save(_build_for(version), version)
    return version


def test_save_then_load_answers_like_the_built_index(tmp_path: Path):
    version = _model_version(tmp_path, seed=0)
    built = _build_for(version)
    save(built, version)
    loaded = load(tmp_path)  # the root: newest version
    assert loaded.version == "v1" and loaded.info == built.info
    assert loaded.search(QUERIES, 10) == built.search(QUERIES, 10)
    manifest = json.loads((version / "index" / "manifest.json").read_text())
    assert manifest["factory"] == "IVF32,Flat" and manifest["search_param"] == "nprobe"
    assert manifest["recall@10"] >= 0.95 and "sha256" in manifest["files"]["index.faiss"]


def test_an_existing_index_is_not_replaced_without_force(published: Path):
    with pytest.raises(ArtifactError, match="already has an index"):
        save(_build_for(published), published)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage_with_matching_manifest"])
def test_a_corrupt_index_file_is_a_clear_artifact_error(published: Path, damage: str):
    generation = (published / "index").resolve()
    path = generation / "index.faiss"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        expected = "sha256 mismatch"
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 3]))
        expected = "truncated"
    else:  # someone rewrote both the file and its checksum: faiss must still not crash us
        path.write_bytes(bytes(data[:200]) + os.urandom(5000))
        manifest = json.loads((generation / "manifest.json").read_text())
        extra = {k: v for k, v in manifest.items() if k not in ("files", "format")}
        write_manifest(generation, ["index.faiss"], **extra)
        expected = "not a readable faiss index"
    with pytest.raises(ArtifactError, match=expected):
        load(published)


def test_tampered_model_embeddings_are_refused(published: Path):
    path = published / "item_embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"item_embeddings\.npy"):
        load(published)


def test_missing_index_says_how_to_build_one(tmp_path: Path):
    version = _model_version(tmp_path, seed=0)
    with pytest.raises(ArtifactError, match="build-index"):
        load(version)


def test_force_replaces_atomically_and_an_open_reader_is_unaffected(published: Path):
    reader = load(published)
    before = reader.search(QUERIES, 10)
    save(_build_for(published, kind="Flat"), published, force=True)
    assert reader.search(QUERIES, 10) == before  # the old reader holds its own copy
    assert load(published).info.factory == "Flat"
    generations = sorted(p.name for p in published.iterdir() if p.name.startswith("index."))
    assert generations == ["index.1", "index.2"]  # the previous one is kept for a mid-load reader


def test_loads_during_repeated_force_swaps_always_succeed(published: Path):
    replacement = _build_for(published, kind="Flat")
    stop = threading.Event()
    failures: list[BaseException] = []
    loads = 0

    def keep_loading() -> None:
        nonlocal loads
        while not stop.is_set():
            try:
                assert len(load(published).search(QUERIES[:2], 5)[0][0]) == 5
                loads += 1
            except BaseException as exc:  # reported below
                failures.append(exc)

    thread = threading.Thread(target=keep_loading)
    thread.start()
    for _ in range(20):
        save(replacement, published, force=True)
    stop.set()
    thread.join()
    assert failures == [] and loads > 0


def test_a_reader_of_vn_keeps_answering_while_vn_plus_1_is_published(tmp_path: Path):
    v1 = _model_version(tmp_path, seed=0)
    save(_build_for(v1), v1)
    reader = load(tmp_path)
    expected = reader.search(QUERIES, 10)
    answers: list[object] = []

    def publish_next() -> None:
        v2 = _model_version(tmp_path, seed=1)
        save(_build_for(v2), v2)

    publisher = threading.Thread(target=publish_next)
    publisher.start()
    while publisher.is_alive():
        answers.append(reader.search(QUERIES, 10))
    publisher.join()
    assert answers and all(a == expected for a in answers)
    assert load(v1).search(QUERIES, 10) == expected  # vN on disk is untouched
    fresh = load(tmp_path)
    assert fresh.version == "v2" and fresh.search(QUERIES, 10) != expected


def test_saving_into_a_version_with_other_embeddings_is_refused(tmp_path: Path):
    v1 = _model_version(tmp_path, seed=0)
    v2 = _model_version(tmp_path, seed=1)
    with pytest.raises(ArtifactError, match="other embeddings"):
        save(_build_for(v1), v2)
