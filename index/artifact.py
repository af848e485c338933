"""Index artifacts: saved beside the model files of a version directory, checksummed, swapped
atomically.

Layout inside one model version ``<root>/v<N>/`` (the model wrote the first three)::

    manifest.json  item_embeddings.npy  item_ids.json
    index -> index.2          symlink to the current index generation
    index.2/                  manifest.json (factory, metric, tuned knob, recall@10, sha256)
                              index.faiss
    index.1/                  the previous generation, kept for a reader mid-load

A generation is written under a temporary name and renamed into place; the ``index`` link is
then created (refused when one exists) or, with ``force``, atomically replaced. A loader
resolves the link once and reads one generation only, and loads everything into memory, so a
reader that already loaded an index never notices a replacement. New model versions are new
``v<N+1>`` directories, which never disturb a reader of ``v<N>``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from recstream.artifacts import (
    INDEX_LINK,
    ArtifactError,
    read_manifest,
    resolve_version,
    write_manifest,
)
from recstream.index.info import IndexInfo
from recstream.index.item_index import ItemIndex
from recstream.index.model_files import EMBEDDINGS, ITEM_IDS, read_model_arrays
from recstream.index.params import family_of
from recstream.index.search import SearchCore
from recstream.index.space import scoring_rows

INDEX_FILE = "index.faiss"
LOAD_ATTEMPTS = 3
_GENERATION = re.compile(r"^index\.(\d+)$")


def has_index(version_dir: Path) -> bool:
    link = version_dir / INDEX_LINK
    return link.is_symlink() or link.exists()


def save(index: ItemIndex, version_dir: Path, *, force: bool = False) -> Path:
    """Publish ``index`` as the index of ``version_dir``; returns the generation directory.

    The version must hold the embeddings and ids the index was built from. Raises
    ArtifactError when an index exists and ``force`` is false.
    """
    return write_parts(
        index.core.index, index.info, index.embeddings, index.item_ids, version_dir, force
    )


def load(path: Path, *, threads: int = 1) -> ItemIndex:
    """Load the index of a version directory (or of the newest version under a root).

    Every file is checked against its manifest (size and sha256) before it is parsed; faiss
    only ever sees bytes that passed. ``threads``: faiss threads per search. Raises
    ArtifactError naming what is wrong.
    """
    return ItemIndex(*read_parts(path, threads))


def write_parts(
    index: faiss.Index,
    info: IndexInfo,
    embeddings: np.ndarray,
    item_ids: Sequence[str],
    version_dir: Path,
    force: bool,
) -> Path:
    """``save`` for an index's parts (see the module doc for the layout and the swap)."""
    model = _check_same_catalogue(embeddings, item_ids, version_dir)
    link = version_dir / INDEX_LINK
    if has_index(version_dir):
        if not force:
            raise ArtifactError(f"{version_dir} already has an index; use --force to replace it")
        if not link.is_symlink():
            raise ArtifactError(f"{link} is not an index link; move it away first")
    source = {name: model["files"][name]["sha256"] for name in (EMBEDDINGS, ITEM_IDS)}
    staged = Path(tempfile.mkdtemp(prefix=".index-staging-", dir=version_dir))
    try:
        faiss.write_index(index, str(staged / INDEX_FILE))
        extra = {"kind": "recstream-index", "faiss_version": faiss.__version__, "source": source}
        write_manifest(staged, [INDEX_FILE], **extra, **info.to_manifest())
        generation = _rename_to_next_generation(version_dir, staged)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    previous = _point_link(link, generation, force)
    _prune(version_dir, keep={generation.name, previous})
    return generation


def read_parts(path: Path, threads: int) -> tuple[SearchCore, np.ndarray, IndexInfo, str]:
    """``load`` as parts: search core, embeddings, info, version name."""
    version_dir = resolve_version(path)
    link = version_dir / INDEX_LINK
    if not link.exists():
        raise ArtifactError(
            f"{version_dir}: no index; run `recstream build-index --artifacts {version_dir}`"
        )
    for _ in range(LOAD_ATTEMPTS):
        generation = link.resolve()  # pin one generation for the whole load
        try:
            return _read_generation(version_dir, generation, threads)
        except (FileNotFoundError, ArtifactError) as exc:
            # Two newer generations were published during this load and ours was pruned (a
            # file, or its manifest, vanished): the link already points at a complete newer
            # one, so read that instead. A fault in the current generation is a real error.
            if isinstance(exc, ArtifactError) and link.resolve() == generation:
                raise
            failure = exc
    raise ArtifactError(f"{link}: index replaced faster than it could be loaded ({failure})")


def _read_generation(
    version_dir: Path, generation: Path, threads: int
) -> tuple[SearchCore, np.ndarray, IndexInfo, str]:
    manifest = read_manifest(generation)
    try:
        info = IndexInfo.from_manifest(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{generation}: index manifest is incomplete ({exc!r})") from exc
    blob = _read_verified(generation, manifest, INDEX_FILE)
    model = read_manifest(version_dir)
    for name, sha in manifest.get("source", {}).items():
        if model["files"].get(name, {}).get("sha256") != sha:
            raise ArtifactError(f"{generation}: built from another {name}; rebuild with --force")
    embeddings, ids = read_model_arrays(version_dir)
    if embeddings.shape != (info.n_items, info.d):
        raise ArtifactError(f"{generation}: manifest says {info.n_items}x{info.d} items")
    index = _deserialize(blob, generation / INDEX_FILE, info)
    rows = scoring_rows(embeddings, info.metric)
    row_of = {item: row for row, item in enumerate(ids)}
    family = family_of(info.factory)
    core = SearchCore(
        index, family, info.search_value, info.transform, rows, tuple(ids), row_of, threads
    )
    return core, embeddings, info, version_dir.name


def _check_same_catalogue(
    embeddings: np.ndarray, item_ids: Sequence[str], version_dir: Path
) -> dict[str, Any]:
    """The saved index stores neither; a loader takes both from the model files."""
    model = read_manifest(version_dir)
    for name in (EMBEDDINGS, ITEM_IDS):
        if name not in model["files"]:
            raise ArtifactError(f"{version_dir}: not a model version ({name} not in its manifest)")
    on_disk, ids = read_model_arrays(version_dir)
    if tuple(ids) != tuple(item_ids) or not np.array_equal(on_disk, embeddings):
        raise ArtifactError(f"{version_dir}: the index was built from other embeddings or ids")
    return model


def _read_verified(directory: Path, manifest: dict[str, Any], name: str) -> bytes:
    entry = manifest["files"].get(name)
    if not isinstance(entry, dict):
        raise ArtifactError(f"{directory}: {name} is not listed in the manifest")
    data = (directory / name).read_bytes()
    if len(data) != entry.get("bytes"):
        raise ArtifactError(
            f"{directory / name}: {len(data)} bytes, manifest says {entry.get('bytes')} "
            "(truncated or altered)"
        )
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ArtifactError(f"{directory / name}: sha256 mismatch with the manifest (corrupt)")
    return data


def _deserialize(blob: bytes, path: Path, info: IndexInfo) -> Any:
    try:
        index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
    except RuntimeError as exc:
        raise ArtifactError(f"{path}: not a readable faiss index") from exc
    expected_d = info.d + (1 if info.transform == "l2-augment" else 0)
    if index.ntotal != info.n_items or index.d != expected_d:
        raise ArtifactError(f"{path}: holds {index.ntotal}x{index.d}, manifest disagrees")
    return index


def _rename_to_next_generation(version_dir: Path, staged: Path) -> Path:
    while True:
        numbers = [
            int(m.group(1)) for p in version_dir.iterdir() if (m := _GENERATION.match(p.name))
        ]
        target = version_dir / f"index.{max(numbers, default=0) + 1}"
        try:
            os.rename(staged, target)  # atomic; fails if a concurrent builder took the number
            return target
        except OSError:
            if not target.exists():
                raise


def _point_link(link: Path, generation: Path, force: bool) -> str | None:
    """Point ``link`` at ``generation``; returns the generation it pointed at before."""
    previous = os.readlink(link) if link.is_symlink() else None
    if not force:
        try:
            os.symlink(generation.name, link)  # atomic create: two builders cannot both win
        except FileExistsError:
            shutil.rmtree(generation, ignore_errors=True)
            raise ArtifactError(f"{link}: another build published first") from None
        return previous
    temporary = link.with_name(f".{link.name}-link-{generation.name}")
    os.symlink(generation.name, temporary)
    os.replace(temporary, link)  # atomic swap: a reader sees the old or the new, never none
    return previous


def _prune(version_dir: Path, keep: set[str | None]) -> None:
    for path in version_dir.iterdir():
        if _GENERATION.match(path.name) and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
