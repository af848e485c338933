"""Loaders, id mapping, ordering, event weights and the leave-one-out split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from recstream.contract import DEFAULT_EVENT_WEIGHTS
from recstream.model.data import (
    Interactions,
    load_dataset,
    load_genres,
    load_table,
    newest_per_user,
)
from recstream.model.sequences import (
    build_sequences,
    leave_one_out,
    pad_right,
    seen_mask,
    training_batch,
    training_windows,
)

ML1M = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ml-1m"
ROWS = [("u1", "b", 2, "click"), ("u1", "a", 1, "click"), ("u2", "a", 5, "purchase")]


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_all_columns(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "x.csv", "user,item,ts,type\nu1,10,5,click\nu2,007,3,purchase\n")
    data = load_table(path)
    assert list(data.users) == ["u1", "u2"]
    assert list(data.items) == ["10", "007"]  # ids stay strings: no "7"
    assert data.ts.tolist() == [5, 3]
    assert list(data.types) == ["click", "purchase"]


def test_tsv_without_optional_columns_uses_file_order(tmp_path: Path) -> None:
    data = load_table(_write_csv(tmp_path / "x.tsv", "item\tuser\nb\tu1\na\tu1\n"))
    assert data.ts.tolist() == [0, 1]
    assert list(data.types) == ["click", "click"]


def test_parquet(tmp_path: Path) -> None:
    table = pa.table({"user": [1, 2], "item": ["x", "y"], "ts": [10, 20]})
    pq.write_table(table, tmp_path / "x.parquet")
    data = load_table(tmp_path / "x.parquet")
    assert list(data.users) == ["1", "2"]
    assert data.ts.tolist() == [10, 20]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "user,product\nu,1\n", "missing column"),
        ("b.csv", "user,item,ts\nu,1,yesterday\n", "must hold integers"),
        ("c.csv", "user,item\n,1\n", "empty user id"),
        ("d.json", "{}", "unknown file type"),
        ("e.csv", "", "not a readable"),
    ],
)
def test_bad_files_fail_clearly(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_table(_write_csv(tmp_path / name, text))


def test_missing_file_and_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file not found"):
        load_dataset("ml-1m", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("netflix", tmp_path)


def test_newest_per_user_keeps_each_users_newest_rows_in_order() -> None:
    rows = [
        ("b", "x", 5, "click"),
        ("a", "y", 1, "click"),
        ("b", "z", 3, "click"),
        ("b", "w", 9, "click"),
        ("a", "q", 1, "buy"),  # ties with a's first row: row order decides
        ("a", "r", 0, "click"),
    ]
    kept = newest_per_user(Interactions.from_rows(rows), 2)
    assert list(zip(kept.users, kept.items, kept.ts.tolist(), kept.types, strict=True)) == [
        ("b", "x", 5, "click"),
        ("a", "y", 1, "click"),
        ("b", "w", 9, "click"),
        ("a", "q", 1, "buy"),
    ]


def test_sequences_sort_by_ts_stably_and_map_ids() -> None:
    rows = [("u", "c", 1, "click"), ("u", "a", 0, "click"), ("u", "b", 1, "click")]
    seqs = build_sequences(Interactions.from_rows(rows), DEFAULT_EVENT_WEIGHTS)
    assert seqs.vocab.item_ids == ("a", "b", "c")
    # "c" and "b" share ts 1 and keep their file order.
    assert seqs.items[0].tolist() == [1, 3, 2]


def test_zero_weight_types_are_dropped_and_weights_kept() -> None:
    rows = [*ROWS, ("u2", "b", 6, "skip")]
    seqs = build_sequences(Interactions.from_rows(rows), DEFAULT_EVENT_WEIGHTS)
    assert seqs.users == ("u1", "u2")
    assert [s.tolist() for s in seqs.items] == [[1, 2], [1]]
    assert seqs.weights[1].tolist() == [DEFAULT_EVENT_WEIGHTS["purchase"]]
    with pytest.raises(ValueError, match="have no weight"):
        build_sequences(Interactions.from_rows([("u", "a", 0, "wink")]), DEFAULT_EVENT_WEIGHTS)


def test_leave_one_out_holds_out_two_and_keeps_short_users_for_training() -> None:
    rows = [("long", str(i), i, "click") for i in range(5)] + [("short", "0", 0, "click")]
    split = leave_one_out(build_sequences(Interactions.from_rows(rows), DEFAULT_EVENT_WEIGHTS))
    assert [s.tolist() for s in split.train] == [[1, 2, 3], [1]]
    assert split.eval_rows.tolist() == [0]
    assert split.valid_targets.tolist() == [4]
    assert split.test_targets.tolist() == [5]


def test_padding_and_training_batch() -> None:
    seqs = [np.array([1, 2, 3, 4]), np.array([5])]
    assert pad_right(seqs, 3).tolist() == [[2, 3, 4], [5, 0, 0]]
    inputs, targets, weights = training_batch(seqs, [np.ones(4), np.ones(1)], 8)
    assert inputs.tolist() == [[1, 2, 3], [0, 0, 0]]
    assert targets.tolist() == [[2, 3, 4], [0, 0, 0]]
    assert weights.tolist() == [[1, 1, 1], [0, 0, 0]]


def test_training_windows_cover_every_target_once() -> None:
    seq = np.arange(1, 9)  # 7 next-item targets: 2..8
    items, _, earlier = training_windows([seq], [np.ones(8)], max_len=3, full=True)
    assert [w.tolist() for w in items] == [[5, 6, 7, 8], [2, 3, 4, 5], [1, 2]]
    assert [e.tolist() for e in earlier] == [[1, 2, 3, 4], [1], []]
    targets = [t for w in items for t in w[1:].tolist()]
    assert sorted(targets) == list(range(2, 9))
    newest, _, _ = training_windows([seq, np.array([4])], [np.ones(8), np.ones(1)], 3, full=False)
    assert [w.tolist() for w in newest] == [[5, 6, 7, 8]]  # a 1-item user has no target


def test_seen_mask_marks_what_the_user_showed_before_each_target_but_never_the_target() -> None:
    # Window 0: inputs 3 1 2 -> targets 1 2 4 (one padding column), item 6 came before it.
    # Window 1: inputs 5 6 5 7 -> targets 6 5 7 8; the target 5 at position 1 repeats an
    # earlier item and so stays in the softmax.
    inputs = torch.tensor([[3, 1, 2, 0], [5, 6, 5, 7]])
    targets = torch.tensor([[1, 2, 4, 0], [6, 5, 7, 8]])
    mask = seen_mask(inputs, targets, [np.array([6]), np.array([], dtype=np.int64)], n_items=8)
    marked = [sorted((np.flatnonzero(row) + 1).tolist()) for row in mask.numpy()]
    assert marked == [
        [3, 6],
        [1, 3, 6],
        [1, 2, 3, 6],
        [5],  # window 1 starts at row 3: window 0 has three real targets
        [6],  # not 5: 5 is this position's target
        [5, 6],
        [5, 6, 7],
    ]


def test_real_ml1m_loads() -> None:
    if not (ML1M / "interactions.tsv.gz").is_file():
        pytest.skip(f"MovieLens-1M not found at {ML1M} (shared data is for development only)")
    data = load_dataset("ml-1m", ML1M)
    assert len(data) == 1_000_209
    assert len(set(data.users)) == 6040
    genres = load_genres("ml-1m", ML1M)
    assert genres is not None and genres["1"] == ("Animation", "Children's", "Comedy")
    short = load_dataset("ml-1m-short", ML1M)
    _, per_user = np.unique(short.users, return_counts=True)
    assert len(short) == 60_400 and set(per_user.tolist()) == {10}
    assert load_genres("ml-1m-short", ML1M) == genres
