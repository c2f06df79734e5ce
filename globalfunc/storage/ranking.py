"""A small term ranker for backends without a full-text engine (Redis, Mongo's fallback).

It scores the latest live records of a space the way the SQLite store's FTS5 query
does, closely enough for the storage contract: every query term must occur (as a word
prefix) in the name, docstring, signature or code; hits weigh 10, 4, 2 and 1 by field;
the best score ranks first and ties go by key. Words split on anything that is not a
letter or digit, so ``to_pickle`` holds the words ``to`` and ``pickle``.

This is a linear scan over the candidates it is given; it does not index anything and
does no I/O. Callers choose the candidates (a whole space, or a text index's hits).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from globalfunc.record import FunctionRecord

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

#: field weights, the same order of importance as the SQLite store's bm25 weights
WEIGHTS: tuple[tuple[str, float], ...] = (
    ("name", 10.0),
    ("docstring", 4.0),
    ("signature", 2.0),
    ("code", 1.0),
)


def words(text: str | None) -> list[str]:
    """Lower-case words of a text, split at anything that is not a letter or digit."""
    return [w.lower() for w in _WORD.findall(text or "")]


def patterns(terms: list[str]) -> list[re.Pattern[str]]:
    """One regex per term matching it at the start of a word."""
    return [re.compile(r"(?<![^\W_])" + re.escape(t)) for t in terms]


def score_texts(texts: tuple[str | None, ...], pats: list[re.Pattern[str]]) -> float:
    """Score of lower-cased (name, docstring, signature, code) for ``pats``, or 0."""
    total = 0.0
    for pat in pats:
        hits = 0.0
        for text, (_, weight) in zip(texts, WEIGHTS, strict=True):
            if text:
                hits += weight * len(pat.findall(text))
        if not hits:
            return 0.0
        total += hits
    return total


def score(record: FunctionRecord, terms: list[str]) -> float:
    """The record's score for ``terms`` (all must match some word prefix), or 0."""
    texts = tuple((getattr(record, name) or "").lower() for name, _ in WEIGHTS)
    return score_texts(texts, patterns(terms))


def rank(records: Iterable[FunctionRecord], query: str, limit: int) -> list[FunctionRecord]:
    """The ``limit`` best live records for ``query``, best first, ties by key."""
    terms = words(query)
    if not terms or limit <= 0:
        return []
    pats = patterns(terms)
    scored = [
        (score_texts(tuple((getattr(r, f) or "").lower() for f, _ in WEIGHTS), pats), r)
        for r in records
        if not r.deleted
    ]
    hits = [(s, r.key, r) for s, r in scored if s > 0]
    hits.sort(key=lambda item: (-item[0], item[1]))
    return [r for _, _, r in hits[:limit]]
