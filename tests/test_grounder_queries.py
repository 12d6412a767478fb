"""Query checks at the facade's boundary: exceptions and documented warnings."""

from __future__ import annotations

import warnings

import pytest

from cmagrounding.errors import QueryError, QueryTypeError, QueryWarning
from cmagrounding.queries import as_query_list, encode_queries, prepare_query
from cmagrounding.text.tokenizer import WordTokenizer


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer.build(["a person opens the door", "the person sits on a chair"], style="lgi")


def test_single_and_list():
    assert as_query_list("a door") == (["a door"], True)
    assert as_query_list(["a", "b"]) == (["a", "b"], False)
    assert as_query_list(("a",)) == (["a"], False)


@pytest.mark.parametrize("bad", [None, 3, b"door", {"q": 1}, ["ok", 7]])
def test_non_string_query(bad):
    with pytest.raises(QueryTypeError):
        as_query_list(bad)


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", ["fine", " "], []])
def test_empty_query(bad):
    with pytest.raises(QueryError):
        as_query_list(bad)


def test_no_words_after_normalization(tok):
    with pytest.raises(QueryError, match="no words after"):
        prepare_query(tok, "?!...", 10)


def test_known_query_no_warning(tok):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = prepare_query(tok, "The person opens the DOOR.", 10)
    assert q.tokens == ("the", "person", "opens", "the", "door") and not q.truncated and q.unknown_words == ()


def test_truncation_warns_and_says_what_is_dropped(tok):
    with pytest.warns(QueryWarning, match="'on a chair' is dropped"):
        q = prepare_query(tok, "the person sits on a chair", 3)
    assert q.tokens == ("the", "person", "sits") and q.truncated


def test_all_unknown_warns_and_says_what_model_sees(tok):
    with pytest.warns(QueryWarning, match="sees only <UNK> <UNK>"):
        q = prepare_query(tok, "zebra galloping", 10)
    assert q.tokens == ("<UNK>", "<UNK>") and q.unknown_words == ("zebra", "galloping")


def test_some_unknown_is_listed_not_warned(tok):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = prepare_query(tok, "person opens the fridge", 10)
    assert q.tokens == ("person", "opens", "the", "<UNK>") and q.unknown_words == ("fridge",)


def test_encode_queries_matches_tokens(tok):
    with pytest.warns(QueryWarning, match="'door' is dropped"):
        ids, mask, prepared = encode_queries(tok, ["person sits", "a person opens the door"], 4)
    assert ids.shape == (2, 4) and mask.sum(1).tolist() == [2, 4]
    for row, m, p in zip(ids, mask, prepared):
        assert [tok.id_to_word(int(i)) for i in row[m]] == list(p.tokens)
