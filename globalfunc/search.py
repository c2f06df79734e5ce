"""The one search ranking, applied the same way whatever the storage backend.

A query is split into terms (lower-case runs of letters and digits; ``to_pickle`` holds
``to`` and ``pickle``; English stop words and one-letter terms dropped unless nothing
else is left). A term matches a word of a record when the word starts with it
(``pick`` matches ``pickle``). A record is a candidate when at least one term matches
one of its fields: name, description, docstring, signature, code (its identifiers,
comments and strings). Its score sums, over the terms it matches:

    idf(term) * sum over fields of weight(field) * saturate(exact hits + prefix hits / 2)

with field weights name 10, description 6, docstring 4, signature 2, code 1; ``idf``
computed over the candidates (``log(1 + (C - df + 0.5) / (df + 0.5))``), so a word
every candidate holds counts for little. Only the candidates that match the most terms
are results: every term when some record matches them all (``save pickle`` is not
every pickle function), else the best partial matches (``read a pickle file from disk``
still finds ``from_pickle`` when no function mentions a disk). Best first, ties by key.

A backend never ranks: it may only narrow the records it hands to :func:`rank` (a text
index, a prefix-token index), as long as every record that matches a term is among them.
Package and branch filters are applied here too, so a backend may or may not push them
down. This module does no I/O.

A query is bounded the same way on every surface (``GET /search``, ``/registry/search``,
the console, ``gf search``, ``GFBase.search``): at most :data:`MAX_QUERY_CHARS` characters
(:func:`check_query` raises :class:`~globalfunc.errors.InvalidRequest`, HTTP 400, past it),
and only its first :data:`MAX_QUERY_TERMS` distinct terms are searched for, so that the
published maximum length is the whole rule.

Semantic reranking is a hook: :func:`set_reranker` installs a function that reorders the
best lexical results (:data:`RERANK_POOL` of them) by meaning; every backend's ranking
goes through :func:`rank_docs`, so they stay the same. ``globalfunc.semantic`` offers one
built on a small embedding model shipped in a PyPI package (the ``semantic`` extra);
without a reranker the ranking is the plain one above.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from globalfunc.errors import InvalidRequest
from globalfunc.record import FunctionRecord

__all__ = [
    "FIELDS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TERMS",
    "SearchDoc",
    "check_query",
    "description_of",
    "doc_of",
    "index_words",
    "query_terms",
    "rank",
    "rank_docs",
    "reranker",
    "set_reranker",
    "words",
]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: (field, weight): the order of importance, the same for every backend
FIELDS: tuple[tuple[str, float], ...] = (
    ("name", 10.0),
    ("description", 6.0),
    ("docstring", 4.0),
    ("signature", 2.0),
    ("code", 1.0),
)

#: words too common to tell functions apart in a plain-language query
_STOP_TEXT = """a an and are as at be by can do does for from get gets give given how i in
into is it its me my of on or some that the their them then this to use used using what
when which with without you your"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

#: longest prefix a prefix-token index keeps per word (longer terms are cut to it)
MAX_PREFIX = 24


def words(text: str | None) -> list[str]:
    """Lower-case words of a text, split at anything that is not a letter or digit."""
    return [w.lower() for w in _WORD.findall(text or "")]


def query_terms(query: str) -> list[str]:
    """The distinct terms of a query, in order (stop words and one-letter words dropped,
    unless that would leave nothing)."""
    all_words = list(dict.fromkeys(words(query)))
    kept = [w for w in all_words if len(w) > 1 and w not in STOP_WORDS]
    terms = kept or [w for w in all_words if len(w) > 1] or all_words
    return terms[:MAX_QUERY_TERMS]  # each term is one scan of every candidate


#: most characters a search query may hold (every search surface)
MAX_QUERY_CHARS = 500
#: most distinct terms of a query that are searched for (each is one scan of every candidate)
MAX_QUERY_TERMS = 16


def check_query(query: str) -> str:
    """``query`` when it is within the limit; else :class:`InvalidRequest` (one line).
    Past :data:`MAX_QUERY_TERMS` distinct words, the later ones are not searched for."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(
            f"search query {query[:40]!r}... is {len(query)} characters; at most "
            f"{MAX_QUERY_CHARS} are allowed: use a few words"
        )
    return query


def description_of(record: FunctionRecord) -> str:
    """A record's description: the one a person (or a describer hook) gave, else ``""``."""
    value = record.extra.get("description") if record.extra else None
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """The searchable text of one record: what :func:`rank_docs` scores."""

    key: str
    package: str
    branch: str
    name: str
    description: str
    docstring: str
    signature: str
    code: str

    def fields(self) -> tuple[str, ...]:
        return (self.name, self.description, self.docstring, self.signature, self.code)


def doc_of(record: FunctionRecord) -> SearchDoc:
    return SearchDoc(
        key=record.key,
        package=record.package,
        branch=record.branch,
        name=record.name,
        description=description_of(record),
        docstring=record.docstring or "",
        signature=record.signature or "",
        code=record.code or "",
    )


def index_words(doc: SearchDoc) -> list[str]:
    """Every prefix (2 to :data:`MAX_PREFIX` letters) of every word of a record, distinct:
    what a whole-word text index must hold for prefix queries (see ``narrow_term``)."""
    out: dict[str, None] = {}
    for text in doc.fields():
        for word in set(words(text)):
            for end in range(2, min(len(word), MAX_PREFIX) + 1):
                out[word[:end]] = None
            if len(word) == 1:
                out[word] = None
    return list(out)


def narrow_term(term: str) -> str:
    """The word to look a term up by in a prefix-token index (:func:`index_words`)."""
    return term[:MAX_PREFIX]


def _saturate(hits: float) -> float:
    return 2.0 * hits / (hits + 1.0)


@functools.lru_cache(maxsize=1024)
def _patterns(term: str) -> re.Pattern[str]:
    """A regex finding ``term`` at the start of a word, capturing the letter or digit
    after it (``""``: the whole word). The literal comes first, and the "not after a
    letter or digit" check is a lookbehind over the term, so the engine scans for the
    literal (about 25x faster than a leading lookbehind); the capture is a lookahead,
    so matches are the same as a scan for word starts."""
    lit = re.escape(term)
    return re.compile(lit + r"(?<![^\W_]" + lit + r")(?=([^\W_]?))")


def _term_hits(texts: Sequence[str], term: str, pat: re.Pattern[str]) -> float:
    """Weighted, saturated hits of one term over a document's lower-cased fields (0: no
    match): a whole-word hit counts 1, a prefix hit 1/2."""
    total = 0.0
    for text, (_, weight) in zip(texts, FIELDS, strict=True):
        if term not in text:  # a plain substring test first: most fields have no hit
            continue
        found = pat.findall(text)
        if found:
            exact = found.count("")
            total += weight * _saturate(exact + (len(found) - exact) / 2.0)
    return total


def rank_docs(
    docs: Iterable[SearchDoc],
    query: str,
    limit: int,
    *,
    package: str | None = None,
    branch: str | None = None,
) -> list[tuple[float, SearchDoc]]:
    """The ``limit`` best documents for ``query`` with their scores, best first."""
    terms = query_terms(query)
    if not terms or limit <= 0:
        return []
    pats = [_patterns(t) for t in terms]
    matched: list[tuple[SearchDoc, list[float]]] = []
    seen: set[str] = set()
    for doc in docs:
        if doc.key in seen:
            continue
        if (package is not None and doc.package != package) or (
            branch is not None and doc.branch != branch
        ):
            continue
        seen.add(doc.key)
        texts = [t.lower() for t in doc.fields()]
        per_term = [_term_hits(texts, t, p) for t, p in zip(terms, pats, strict=True)]
        if any(per_term):
            matched.append((doc, per_term))
    count = len(matched)
    idf = []
    for i in range(len(terms)):
        df = sum(1 for _, hits in matched if hits[i])
        idf.append(math.log(1.0 + (count - df + 0.5) / (df + 0.5)))
    coverage = [sum(1 for h in hits if h) for _, hits in matched]
    most = max(coverage, default=0)
    scored = []
    for (doc, hits), covered in zip(matched, coverage, strict=True):
        if covered < most:
            continue  # only the records that match the most terms
        points = sum(w * h for w, h in zip(idf, hits, strict=True))
        scored.append((round(points, 9), doc))
    scored.sort(key=lambda item: (-item[0], item[1].key))
    if _reranker is not None and len(scored) > 1:
        return _rerank(_reranker, query, scored[: max(limit, RERANK_POOL)])[:limit]
    return scored[:limit]


#: reorders the best lexical results by meaning: (query, docs best first) -> one
#: similarity in [-1, 1] per doc
Reranker = Callable[[str, Sequence[SearchDoc]], Sequence[float]]

#: how many of the best lexical results a reranker may reorder
RERANK_POOL = 30

#: how much meaning counts against the lexical score (each scaled to at most 1)
SEMANTIC_WEIGHT = 0.5

_reranker: Reranker | None = None


def set_reranker(fn: Reranker | None) -> Reranker | None:
    """Install ``fn`` as the semantic reranker (``None``: plain ranking); returns the one
    it replaces."""
    global _reranker
    previous, _reranker = _reranker, fn
    return previous


def reranker() -> Reranker | None:
    """The installed semantic reranker, if any."""
    return _reranker


def _rerank(
    fn: Reranker, query: str, scored: list[tuple[float, SearchDoc]]
) -> list[tuple[float, SearchDoc]]:
    """Blend each lexical score (divided by the best) with the doc's similarity."""
    similarity = fn(query, [doc for _, doc in scored])
    if len(similarity) != len(scored):
        raise ValueError(
            f"reranker {fn!r} gave {len(similarity)} similarities for {len(scored)} results"
        )
    top = scored[0][0] or 1.0
    blended = [
        (round((1 - SEMANTIC_WEIGHT) * points / top + SEMANTIC_WEIGHT * float(sim), 9), doc)
        for (points, doc), sim in zip(scored, similarity, strict=True)
    ]
    blended.sort(key=lambda item: (-item[0], item[1].key))
    return blended


def rank(
    records: Iterable[FunctionRecord],
    query: str,
    limit: int,
    *,
    package: str | None = None,
    branch: str | None = None,
) -> list[FunctionRecord]:
    """The ``limit`` best live records for ``query``, best first (see the module docstring)."""
    live = {r.key: r for r in records if not r.deleted}
    best = rank_docs(
        (doc_of(r) for r in live.values()), query, limit, package=package, branch=branch
    )
    return [live[doc.key] for _, doc in best]


def _default_reranker() -> Reranker | None:
    from globalfunc.semantic import installed_reranker

    return installed_reranker()


_reranker = _default_reranker()  # the ``semantic`` extra's, when installed (loads nothing)
