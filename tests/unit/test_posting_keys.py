"""Idempotency keys: different causes never share a key; simple ids keep their old keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.ledger.keys import key_parts, posting_key

_text = st.text(alphabet=":%3Aab25", max_size=6)
parts = st.builds(
    lambda cause, rest: [cause, *rest], _text.filter(bool), st.lists(_text, max_size=3)
)


@given(parts, parts)
def test_keys_are_equal_only_for_equal_parts(a: list[str], b: list[str]) -> None:
    assert (posting_key(*a) == posting_key(*b)) == (a == b)


@given(parts)
def test_a_key_gives_back_its_parts(a: list[str]) -> None:
    assert key_parts(posting_key(*a)) == a


def test_a_hold_close_and_a_hold_named_like_it_differ() -> None:
    assert posting_key("hold", "x", "close") != posting_key("hold", "x:close")


def test_ids_without_colon_or_percent_keep_the_plain_key() -> None:
    assert posting_key("hold", "job_1") == "hold:job_1"
    assert posting_key("refund", "podcast_jobs", "j", 7) == "refund:podcast_jobs:j:7"
