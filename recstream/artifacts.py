"""Versioned, checksummed artifact directories shared by model/ and index/.

Layout: ``<root>/v<N>/`` holds one trained model and everything derived from it, with a
``manifest.json`` that records the sha256 and size of every file. A version directory is
written under a temporary name and renamed into place, so readers never see half a version.
Only hashlib and json here: index/ may use this without pulling in torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
# A model version's files (model/ writes them, index/ and the worker read them).
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
ITEM_IDS = "item_ids.json"
EMBEDDINGS = "item_embeddings.npy"
METRICS = "metrics.json"
ENCODER_ONNX = "encoder.onnx"  # optional: versions published before it lack it
ENCODER_INT8 = "encoder.int8.onnx"  # optional: its int8 copy, when that ranks like torch
# encoder.int8.onnx's metadata entry saying its activation scales were fixed at publish time, so
# a user's vector does not depend on the other users of a batch. Copies without it quantise
# each call's activations with one scale (published before this entry existed).
INT8_SCALES = ("recstream.activation_scales", "calibrated")
MODEL_FILES = (WEIGHTS, CONFIG, ITEM_IDS, EMBEDDINGS, METRICS)
INDEX_LINK = "index"  # the version's current index generation (index/artifact.py writes it)
_VERSION_RE = re.compile(r"^v(\d+)$")


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete, truncated or has been tampered with."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, files: Iterable[str], **extra: Any) -> dict[str, Any]:
    """Checksum ``files`` (paths relative to ``directory``) into ``directory/manifest.json``."""
    entries = {}
    for name in sorted(files):
        path = directory / name
        entries[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {"format": 1, "files": entries, **extra}
    _write_json_atomic(directory / MANIFEST, manifest)
    return manifest


def version_sha256(version_dir: Path) -> str:
    """One sha256 for a whole version: over its manifest and its current index generation's
    manifest, each of which pins its files' sha256 — so a file changed anywhere (weights,
    encoder export, index, either manifest) changes it. What ``model-updates`` announces."""
    digest = hashlib.sha256()
    for name in (MANIFEST, f"{INDEX_LINK}/{MANIFEST}"):
        path = version_dir / name
        if name == MANIFEST or path.is_file():  # a version without an index yet
            digest.update(f"{name} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory}: no {MANIFEST}; not a recstream artifact (or unfinished)")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{path}: manifest has no 'files' table")
    return manifest


def verify_manifest(directory: Path, names: Iterable[str] | None = None) -> dict[str, Any]:
    """Check size and sha256 of every file the manifest lists (or just ``names``).

    Raises :class:`ArtifactError` naming the first file that is missing, truncated or altered.
    """
    manifest = read_manifest(directory)
    files: dict[str, Any] = manifest["files"]
    for name in files if names is None else names:
        if name not in files:
            raise ArtifactError(f"{directory}: {name} is not listed in the manifest")
        _verify_file(directory / name, files[name])
    return manifest


def _verify_file(path: Path, entry: dict[str, Any]) -> None:
    if not path.is_file():
        raise ArtifactError(f"{path}: listed in the manifest but missing")
    size = path.stat().st_size
    if size != entry.get("bytes"):
        raise ArtifactError(
            f"{path}: size {size} bytes, manifest says {entry.get('bytes')} (truncated or altered)"
        )
    if sha256_file(path) != entry.get("sha256"):
        raise ArtifactError(f"{path}: sha256 mismatch with the manifest (file altered or corrupt)")


def version_number(version: str | Path) -> int | None:
    """``v12`` (a name, or a version directory) → 12; anything else (``none``) → None."""
    match = _VERSION_RE.match(version.name if isinstance(version, Path) else version)
    return int(match.group(1)) if match else None


def list_versions(root: Path) -> list[Path]:
    """Published version directories under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(version_number(p), p) for p in root.iterdir() if p.is_dir()]
    return [p for n, p in sorted((n, p) for n, p in found if n is not None)]


def newest_version(root: Path) -> Path | None:
    """The highest-numbered version directory under ``root``, or None."""
    versions = list_versions(root)
    return versions[-1] if versions else None


def resolve_version(path: Path) -> Path:
    """Accept an artifact root (newest version wins) or one version directory."""
    if (path / MANIFEST).is_file():
        return path
    versions = list_versions(path)
    if not versions:
        raise ArtifactError(f"{path}: no artifact versions found (expected {path}/v1/{MANIFEST})")
    return versions[-1]


def staging_dir(root: Path) -> Path:
    """A private directory beside the versions, to be published with :func:`publish_version`."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=root))


def publish_version(root: Path, staged: Path) -> Path:
    """Atomically rename a staged directory to the next free ``v<N>``; returns the new path."""
    # mkdtemp made it private (0700); a published version must be readable by a worker that
    # runs as another user (e.g. in a container sharing the volume).
    os.chmod(staged, 0o755)
    while True:
        versions = list_versions(root)
        number = (version_number(versions[-1]) or 0) + 1 if versions else 1
        final = root / f"v{number}"
        try:
            # rename() of a directory onto a missing name is atomic on POSIX; a concurrent
            # publisher that took the same number makes it fail, and we try the next one.
            os.rename(staged, final)
            return final
        except OSError:
            if not final.exists():
                raise


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# numpy parses a .npy header with ast.literal_eval, and CPython 3.11 can fail building ASTs in
# two threads at once ("AST constructor recursion depth mismatch"): a hot swap loads in a thread.
_NPY_LOCK = threading.Lock()


def load_npy(path: Path) -> np.ndarray:
    """``np.load`` of a plain array (never pickles), safe to call from several threads."""
    with _NPY_LOCK:
        return np.load(path, allow_pickle=False)
