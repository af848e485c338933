"""The encoder → index → MMR composition, with exact fakes for the model and the index."""

from __future__ import annotations

from recstream.streams.recommender import ModelRecommender, NoModel, Request
from recstream.streams.trending import (
    EPOCH_HALF_LIVES,
    decayed_increment,
    merge_epochs,
    top_category,
)
from tests.fakes import ExactIndex, MeanEncoder, genre_world


def recommender(lam: float = 1.0) -> ModelRecommender:
    ids, vecs = genre_world()
    return ModelRecommender(MeanEncoder(ids, vecs), ExactIndex(ids, vecs), 20, lam)


def test_lists_follow_the_users_genre_and_skip_excluded_items() -> None:
    rec = recommender()
    history = ["g2-0", "g2-1"]
    (items,) = rec.recommend([Request(history, set(history))], k=5)
    assert len(items) == 5
    assert all(i.startswith("g2-") for i, _ in items)
    assert not {"g2-0", "g2-1"} & {i for i, _ in items}
    scores = [s for _, s in items]
    assert scores == sorted(scores, reverse=True)


def test_excluded_items_are_never_returned() -> None:
    rec = recommender()
    (items,) = rec.recommend([Request(["g1-0"], {"g1-0", "g1-1"})], 5)
    assert "g1-1" not in {i for i, _ in items}


def test_each_item_is_explained_by_the_history_items_of_its_genre() -> None:
    """A scripted history of two genres: every recommended item names history items of its
    own genre (nearest first, at most three, never an item of the other genre)."""
    rec = recommender()
    history = ["g1-0", "g3-0", "g1-1", "g3-1", "g1-2", "g1-3", "unknown"]
    (items,) = rec.recommend([Request(history, set(history))], k=6)
    (reasons,) = rec.explain([history], [[i for i, _ in items]])
    assert len(reasons) == len(items)
    for (item, _), because in zip(items, reasons, strict=True):
        genre = item.split("-")[0]
        assert 1 <= len(because) <= 3
        assert all(h.split("-")[0] == genre for h in because), (item, because)
    # g1 items have four g1 history items to choose from: the three nearest, in order.
    g1 = next(b for (i, _), b in zip(items, reasons, strict=True) if i.startswith("g1"))
    assert len(g1) == 3 and len(set(g1)) == 3
    assert NoModel().explain([history], [["g1-5"]]) == [[[]]]


def test_an_item_unlike_every_history_item_has_no_reason() -> None:
    rec = recommender()
    assert rec.explain([["g0-0", "g0-1"]], [["g2-5"]]) == [[[]]]  # orthogonal genres
    assert rec.explain([[]], [["g2-5"]]) == [[[]]]


def test_similar_items_are_the_items_of_the_same_genre() -> None:
    rec = recommender()
    similar = rec.similar("g2-3", 5, exclude={"g2-4"})
    assert similar is not None and len(similar) == 5
    assert all(i.startswith("g2-") and i not in {"g2-3", "g2-4"} for i, _ in similar)
    assert rec.similar("nobody-knows", 5, set()) is None
    assert NoModel().similar("g2-3", 5, set()) is None


def test_users_without_known_items_get_an_empty_list_for_cold_start() -> None:
    rec = recommender()
    lists = rec.recommend([Request(["unknown"], set()), Request([], set())], k=3)
    assert lists == [[], []]
    assert NoModel().recommend([Request(["g1-0"], set())], 3) == [[]]


def test_mmr_mixes_genres_when_asked() -> None:
    ids, vecs = genre_world()
    history = ["g0-0", "g1-0"]
    for lam, expect_mixed in ((1.0, False), (0.3, True)):
        rec = ModelRecommender(MeanEncoder(ids, vecs), ExactIndex(ids, vecs), 40, lam)
        (items,) = rec.recommend([Request(history[:1], set(history))], k=6)
        genres = {i.split("-")[0] for i, _ in items}
        assert (len(genres) > 1) is expect_mixed


def test_trending_decay_epochs_and_favourite_category() -> None:
    hour = 3_600_000
    epoch = EPOCH_HALF_LIVES * hour
    assert decayed_increment(1.0, 0, hour) == (0, 1.0)
    assert decayed_increment(1.0, 2 * hour, hour) == (0, 4.0)  # two half-lives later: 4x
    # Years after any anchor the increments stay finite: each epoch restarts at 2^0.
    far = 1_795_000_000_000  # 2026-11-18
    e, inc = decayed_increment(3.0, far, hour)
    assert e == far // epoch and 3.0 <= inc < 3.0 * 2.0**EPOCH_HALF_LIVES
    # An item bought once in the previous epoch's last instant ranks like one bought just
    # now... only if it had 2^64 times the weight: the previous epoch is worth 2^-64.
    merged = merge_epochs([(b"new", 2.0)], [(b"old", 2.0**EPOCH_HALF_LIVES * 3.0), (b"new", 1.0)])
    assert [item for item, _ in merged] == [b"old", b"new"]
    assert merged[0][1] == 3.0
    assert top_category({"a": 1.0, "b": 3.0}) == "b"
    assert top_category({}) is None
