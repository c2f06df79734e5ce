"""One ranked search on every backend: a relevance corpus, prefixes, filters, descriptions.

The corpus is ``tests/data/corpus`` (52 real function files in six packages, scanned
as ``gf save`` scans them); each plain-language query names the function a person
looking for it expects first. Every backend must give the same answers, because the
ranking is computed in one place (``globalfunc.search``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from globalfunc.record import FunctionRecord
from globalfunc.scan import Scanner
from globalfunc.storage import Storage
from tests.factories import make_record

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
TIER1 = "sp_GlobalFunc"

#: plain-language query -> the expected top result
QUERIES = {
    "turn a title into a url slug": "Text.slugify",
    "load an object from a pickle file": "Files.from_pickle",
    "distance between two gps coordinates": "Math.haversine_km",
    "convert a timestamp to a readable date": "Time.timestamp_to_str",
    "remove duplicates from a list": "Data.dedup_keep_order",
    "checksum of a file": "Files.file_sha256",
    "split a list into chunks": "Data.chunk_list",
    "parse a time string": "Time.inverse_time_str",
    "check an ip address": "Net.is_valid_ipv4",
    "average of numbers": "Math.mean",
    "edit distance between strings": "Text.levenshtein",
    "skip weekends when adding working days": "Time.add_business_days",
}


def corpus_records(branch: str = "master") -> list[FunctionRecord]:
    result = Scanner(CORPUS, cache_file=None).scan()
    assert not result.problems, result.problems
    return [
        FunctionRecord.from_info(info, tier1=TIER1, branch=branch)
        for info in result.functions.values()
    ]


def names(records: list[FunctionRecord]) -> list[str]:
    return [f"{r.package}.{r.name}" for r in records]


@pytest.fixture
def corpus(storage: Storage) -> Storage:
    records = corpus_records()
    assert len(records) >= 50
    assert all(storage.put(records))
    return storage


def test_relevance_corpus(corpus: Storage) -> None:
    misses = {}
    for query, expected in QUERIES.items():
        top = names(corpus.search(TIER1, query, limit=5))
        if not top or top[0] != expected:
            misses[query] = (expected, top)
    assert not misses, misses


def test_word_prefixes_match(corpus: Storage) -> None:
    assert sorted(names(corpus.search(TIER1, "pick", limit=5))) == [
        "Files.from_pickle",
        "Files.to_pickle",
    ]
    assert names(corpus.search(TIER1, "levensh")) == ["Text.levenshtein"]
    assert corpus.search(TIER1, "zzyzx") == []


def test_filters_by_package_and_branch(corpus: Storage) -> None:
    corpus.put(
        [r.with_(branch="dev") for r in corpus_records() if r.package == "Files"]  # type: ignore[misc]
    )
    everywhere = corpus.search(TIER1, "pickle file", limit=10)
    assert {r.branch for r in everywhere} == {"master", "dev"}
    on_dev = corpus.search(TIER1, "pickle file", limit=10, branch="dev")
    assert on_dev and {r.branch for r in on_dev} == {"dev"}
    in_math = corpus.search(TIER1, "list of numbers", limit=10, package="Math")
    assert in_math and {r.package for r in in_math} == {"Math"}
    assert corpus.search(TIER1, "pickle", package="Math") == []


def test_every_backend_gives_the_same_order(corpus: Storage) -> None:
    """The whole ranked list, not only the top, is the ranking module's own."""
    from globalfunc import search

    records = corpus_records()
    for query in [*QUERIES, "file", "list", "time date"]:
        expected = names(search.rank(records, query, 10))
        assert names(corpus.search(TIER1, query, limit=10)) == expected, query


# -- descriptions ------------------------------------------------------------------------
KEY = "sp_GlobalFunc.Base_master.to_pickle"


def described(record: FunctionRecord, text: str) -> FunctionRecord:
    return record.with_(extra={"description": text})


def test_a_description_is_a_new_version_of_the_same_code(storage: Storage) -> None:
    rec = make_record()
    assert storage.put([rec]) == [True]
    assert storage.put([described(rec, "Serialize anything to disk")]) == [True]
    history = storage.history(KEY)
    assert len(history) == 2 and history[0].sha256 == history[1].sha256
    assert [h.description for h in history] == ["Serialize anything to disk", ""]
    assert storage.put([described(rec, "Serialize anything to disk")]) == [False]
    assert storage.put([rec]) == [False]  # a save without a description keeps it
    latest = storage.get(KEY)
    assert latest is not None and latest.description == "Serialize anything to disk"


def test_a_description_survives_new_code_and_is_searchable(storage: Storage) -> None:
    rec = make_record()
    storage.put([described(rec, "Serialize anything to disk")])
    v2 = make_record(code="def to_pickle(x=None):\n    return [x]\n")
    assert storage.put([v2]) == [True]
    latest = storage.get(KEY)
    assert latest is not None and latest.sha256 == v2.sha256
    assert latest.description == "Serialize anything to disk"
    assert names(storage.search(TIER1, "serialize")) == ["Base.to_pickle"]
    assert storage.put([described(v2, "")]) == [True]  # removed
    assert storage.search(TIER1, "serialize") == []
    assert [h.description for h in storage.history(KEY)][:2] == ["", "Serialize anything to disk"]
