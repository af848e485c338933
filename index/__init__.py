"""FAISS retrieval over item embeddings: build, search with filters, versioned artifacts.

Seam with model/: a float32 ``(n_items, d)`` array of item embeddings plus the item ids in row
order; the score is the inner product. Seam with streams/: ``ItemIndex.search``. No torch here.
"""

from recstream.index.artifact import load, save
from recstream.index.build import build
from recstream.index.filters import Allowed
from recstream.index.item_index import IndexInfo, ItemIndex

__all__ = ["Allowed", "IndexInfo", "ItemIndex", "build", "load", "save"]
