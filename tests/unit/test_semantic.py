"""The semantic reranking hook of ``globalfunc.search``, and the embedding reranker of
the ``semantic`` extra (its tests run only where the extra is installed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from globalfunc import search, semantic
from globalfunc.search import SearchDoc


def _doc(name: str, docstring: str, package: str = "Geo") -> SearchDoc:
    return SearchDoc(
        key=f"sp_T.{package}_master.{name}",
        package=package,
        branch="master",
        name=name,
        description="",
        docstring=docstring,
        signature="(a, b)",
        code=f"def {name}(a, b):\n    return a\n",
    )


DOCS = [
    _doc("distance_fast", "Distance between points on a plane."),
    _doc("distance_sphere", "Great-circle distance between two places on earth."),
    _doc("distance_grid", "Distance in city blocks."),
]


@pytest.fixture
def no_reranker() -> Iterator[None]:
    previous = search.set_reranker(None)
    yield
    search.set_reranker(previous)


def test_without_a_reranker_the_order_is_the_lexical_one(no_reranker: None) -> None:
    ranked = search.rank_docs(DOCS, "distance", 3)
    assert [d.name for _, d in ranked] == ["distance_fast", "distance_grid", "distance_sphere"]


def test_a_reranker_reorders_by_meaning_but_never_adds_results(no_reranker: None) -> None:
    seen: list[tuple[str, list[str]]] = []

    def likes_spheres(query: str, docs: Sequence[SearchDoc]) -> list[float]:
        seen.append((query, [d.name for d in docs]))
        return [1.0 if "earth" in d.docstring else 0.0 for d in docs]

    search.set_reranker(likes_spheres)
    ranked = search.rank_docs([*DOCS, _doc("slugify", "Make a slug.", "Text")], "distance", 2)
    assert [d.name for _, d in ranked] == ["distance_sphere", "distance_fast"]
    assert seen == [("distance", ["distance_fast", "distance_grid", "distance_sphere"])]
    assert search.rank_docs(DOCS, "nothing matches", 5) == []


def test_a_reranker_giving_the_wrong_number_of_scores_is_an_error(no_reranker: None) -> None:
    search.set_reranker(lambda query, docs: [0.5])
    with pytest.raises(ValueError, match="gave 1 similarities for 3 results"):
        search.rank_docs(DOCS, "distance", 3)


def test_gf_semantic_0_turns_the_reranker_off_at_the_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_reranker: None
) -> None:
    from globalfunc.cli.main import main

    assert (semantic.installed_reranker() is not None) == semantic.available()
    search.set_reranker(lambda query, docs: [0.0] * len(docs))
    monkeypatch.setenv("GF_SEMANTIC", "0")
    monkeypatch.setenv("GF_STORAGE_URL", f"sqlite://{tmp_path / 'r.db'}")
    main(["--root", str(tmp_path), "ls"])
    assert search.reranker() is None


def test_doc_text_is_the_name_as_words_and_the_docstring_summary() -> None:
    doc = _doc("timestamp_to_str", "Format a timestamp.\n\nLong details here.")
    assert semantic.doc_text(doc) == "timestamp to str Format a timestamp. (a, b)"


@pytest.mark.skipif(not semantic.available(), reason="the semantic extra is not installed")
def test_the_packaged_model_loads_offline_and_ranks_by_meaning(
    monkeypatch: pytest.MonkeyPatch, no_reranker: None
) -> None:
    import socket

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    reranker = semantic.EmbeddingReranker()
    sims = reranker("how far apart are two cities on the globe", DOCS)
    assert max(range(3), key=lambda i: sims[i]) == 1  # the great-circle one
    search.set_reranker(reranker)
    ranked = search.rank_docs(DOCS, "distance on the globe", 3)  # lexical: a tie
    assert ranked[0][1].name == "distance_sphere"
