"""Interaction datasets: MovieLens-1M, MovieLens-100K and the user's own CSV/TSV/Parquet files.

Every loader returns :class:`Interactions`, plain columns of ``(user, item, ts, type)`` rows.
Ids stay strings; mapping them to indices is :mod:`recstream.model.sequences`' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DATASETS = ("ml-1m", "ml-100k", "ml-1m-short", "file")
# ml-1m-short: ML-1M cut to each user's newest SHORT_HISTORY items, the history lengths of a
# shop (most users there have 5-10 interactions) on a real catalogue.
SHORT_HISTORY = 10
DEFAULT_TYPE = "click"


@dataclass(frozen=True)
class Interactions:
    """Columns of equal length: who (str), what (str), when (int64; orders a user's rows), type."""

    users: np.ndarray  # [n] object (str)
    items: np.ndarray  # [n] object (str)
    ts: np.ndarray  # [n] int64
    types: np.ndarray  # [n] object (str)

    def __post_init__(self) -> None:
        lengths = {len(self.users), len(self.items), len(self.ts), len(self.types)}
        if len(lengths) != 1:
            raise ValueError(f"interaction columns differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_rows(cls, rows: list[tuple[str, str, int, str]]) -> Interactions:
        """Build from ``(user, item, ts, type)`` tuples, e.g. events read from a log."""
        users, items, ts, types = zip(*rows, strict=True) if rows else ((), (), (), ())
        return cls(
            np.array(users, dtype=object),
            np.array(items, dtype=object),
            np.array(ts, dtype=np.int64),
            np.array(types, dtype=object),
        )


def load_dataset(name: str, path: Path) -> Interactions:
    """Load ``name`` (ml-1m, ml-100k: a directory; file: a CSV/TSV/Parquet file) from ``path``."""
    if name == "ml-1m":
        return _load_ml1m(path)
    if name == "ml-100k":
        return _load_ml100k(path)
    if name == "ml-1m-short":
        return newest_per_user(_load_ml1m(path), SHORT_HISTORY)
    if name == "file":
        return load_table(path)
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def load_genres(name: str, path: Path) -> dict[str, tuple[str, ...]] | None:
    """Item id -> genres for the MovieLens sets, None where the dataset has none."""
    if name in ("ml-1m", "ml-1m-short"):
        table = _read_delimited(_need(path / "items.tsv"), "\t")
        ids, genres = _column(table, "item_id"), _column(table, "genres")
        return {i: tuple(g.split("|")) for i, g in zip(ids, genres, strict=True)}
    if name == "ml-100k":
        table = _read_delimited(_need(path / "ml-100k.item"), "\t")
        ids, genres = _column(table, "item_id:token"), _column(table, "class:token_seq")
        return {i: tuple(g.split()) for i, g in zip(ids, genres, strict=True)}
    return None


def newest_per_user(data: Interactions, keep: int) -> Interactions:
    """Each user's ``keep`` newest rows (by ``ts``, ties in row order), in the original order."""
    order = np.lexsort((np.arange(len(data)), data.ts, data.users))  # by user, then time
    users = data.users[order]
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    ends = np.r_[starts[1:], len(users)]
    rank_from_end = np.repeat(ends, ends - starts) - np.arange(len(users))  # 1 = newest
    chosen = np.sort(order[rank_from_end <= keep])
    return Interactions(data.users[chosen], data.items[chosen], data.ts[chosen], data.types[chosen])


def load_table(path: Path) -> Interactions:
    """A user's own file: header with ``user``, ``item`` and optional ``ts``, ``type``."""
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith((".parquet", ".pq")):
        table = _read_parquet(_need(path))
    elif suffixes.endswith((".tsv", ".tsv.gz", ".tab")):
        table = _read_delimited(_need(path), "\t")
    elif suffixes.endswith((".csv", ".csv.gz")):
        table = _read_delimited(_need(path), ",")
    else:
        raise ValueError(f"{path}: unknown file type; expected .csv, .tsv or .parquet (or .gz)")
    return _from_table(table, path)


def _load_ml1m(directory: Path) -> Interactions:
    # Rows come in each user's chronological order; `position` is the only clock there is.
    table = _read_delimited(_need(directory / "interactions.tsv.gz"), "\t")
    users, items = _column(table, "user_id"), _column(table, "item_id")
    ts = _int_column(table, "position", directory)
    types = np.full(len(users), DEFAULT_TYPE, dtype=object)
    return Interactions(users, items, ts, types)


def _load_ml100k(directory: Path) -> Interactions:
    table = _read_delimited(_need(directory / "ml-100k.inter"), "\t")
    users, items = _column(table, "user_id:token"), _column(table, "item_id:token")
    ts = _float_column(table, "timestamp:float", directory).astype(np.int64)
    types = np.full(len(users), DEFAULT_TYPE, dtype=object)
    return Interactions(users, items, ts, types)


def _from_table(table: pa.Table, path: Path) -> Interactions:
    missing = [c for c in ("user", "item") if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; the header must name user, item[, ts, type] "
            f"(found {table.column_names})"
        )
    users, items = _column(table, "user"), _column(table, "item")
    if "ts" in table.column_names:
        ts = _int_column(table, "ts", path)
    else:
        ts = np.arange(len(users), dtype=np.int64)  # file order is the clock
    types = _column(table, "type") if "type" in table.column_names else None
    if types is None:
        types = np.full(len(users), DEFAULT_TYPE, dtype=object)
    _check_ids(users, "user", path)
    _check_ids(items, "item", path)
    return Interactions(users, items, ts, types)


def _read_delimited(path: Path, delimiter: str) -> pa.Table:
    # Everything is read as text: ids must not turn into floats, and we check numbers ourselves.
    try:
        parse = pacsv.ParseOptions(delimiter=delimiter)
        header = pacsv.open_csv(path, parse_options=parse).schema.names
        types = {name: pa.string() for name in header}
        return pacsv.read_csv(
            path,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path}: not a readable delimited file with a header ({exc})") from exc


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc


def _column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise ValueError(f"missing column {name!r}; found {table.column_names}")
    values = table.column(name).cast(pa.string()).to_pylist()
    return np.array(values, dtype=object)


def _int_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    values = _column(table, name)
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_int(v))
        raise ValueError(f"{path}: column {name!r} must hold integers; found {bad!r}") from None


def _float_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    try:
        return np.array(_column(table, name), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: column {name!r} must hold numbers ({exc})") from None


def _is_int(value: object) -> bool:
    try:
        int(str(value))
    except ValueError:
        return False
    return True


def _check_ids(values: np.ndarray, name: str, path: Path) -> None:
    empty = [i for i, v in enumerate(values) if v is None or v == ""]
    if empty:
        raise ValueError(f"{path}: empty {name} id in data row {empty[0] + 1}")


def _need(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    return path
