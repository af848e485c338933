"""``simulate``'s model_frozen arm: the version is loaded as the worker loads it and asked as
the worker asks it (Request objects, in bounded batches)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import recstream.serving
from recstream.cli_sim import FROZEN_BATCH, _frozen_loader
from recstream.settings import Settings
from recstream.sim.loop import SimulationError
from recstream.streams.recommender import Request


class FakeRecommender:
    version = "v1"
    max_len = 7

    def __init__(self) -> None:
        self.batches: list[list[Request]] = []

    def recommend(self, requests: Sequence[Request], k: int) -> list[list[tuple[str, float]]]:
        self.batches.append(list(requests))
        return [[(f"{r.history[-1]}+{n}", 1.0) for n in range(k)] for r in requests]


def test_the_frozen_model_is_the_versions_recommender_asked_in_batches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake, loaded = FakeRecommender(), []

    def load_recommender(path: Path, s: Settings) -> FakeRecommender:
        loaded.append(path)
        return fake

    monkeypatch.setattr(recstream.serving, "load_recommender", load_recommender)
    frozen = _frozen_loader(Settings(), tmp_path)("v1")
    assert loaded == [tmp_path / "v1"]
    assert (frozen.version, frozen.max_len) == ("v1", 7)
    requests = [((f"i{n}",), frozenset({f"i{n}"})) for n in range(FROZEN_BATCH + 3)]
    lists = frozen.recommend(requests, 2)
    assert lists[0] == ["i0+0", "i0+1"] and len(lists) == FROZEN_BATCH + 3
    assert [len(b) for b in fake.batches] == [FROZEN_BATCH, 3]
    last = f"i{FROZEN_BATCH}"
    assert fake.batches[1][0] == Request((last,), frozenset({last}))


def test_a_version_that_cannot_be_loaded_is_a_simulation_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(path: Path, s: Settings) -> None:
        raise ValueError("checksum mismatch")

    monkeypatch.setattr(recstream.serving, "load_recommender", broken)
    with pytest.raises(SimulationError, match="v3 for model_frozen: checksum mismatch"):
        _frozen_loader(Settings(), tmp_path)("v3")
