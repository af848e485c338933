"""FAISS retrieval over item embeddings: build, search with filters, versioned artifacts.

Seam with model/: a float32 ``(n_items, d)`` array of item embeddings plus the item ids in row
order; the score is the inner product. Seam with streams/: ``ItemIndex.search``. No torch here.
Names below load on first use, so that importing a light module of the package costs no faiss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recstream.lazy import lazy_attributes

if TYPE_CHECKING:
    from recstream.index.artifact import load as load
    from recstream.index.artifact import save as save
    from recstream.index.builder import build as build
    from recstream.index.filters import Allowed as Allowed
    from recstream.index.item_index import IndexInfo as IndexInfo
    from recstream.index.item_index import ItemIndex as ItemIndex

_HOMES = {
    "load": "artifact",
    "save": "artifact",
    "build": "builder",
    "Allowed": "filters",
    "IndexInfo": "item_index",
    "ItemIndex": "item_index",
}
__all__ = sorted(_HOMES)


__getattr__ = lazy_attributes(__name__, _HOMES)
