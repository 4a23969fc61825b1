"""Idempotency keys: different causes never share a key; simple ids keep their old keys."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.billing.rules import checkout_key, event_key, invoice_key
from shared.ledger import transaction_id_for
from shared.ledger.keys import key_parts, posting_key

_text = st.text(alphabet=":%3Aab25", max_size=6)
parts = st.builds(
    lambda cause, rest: [cause, *rest], _text.filter(bool), st.lists(_text, max_size=3)
)


@settings(deadline=None)  # timing is not what these test
@given(parts, parts)
def test_keys_are_equal_only_for_equal_parts(a: list[str], b: list[str]) -> None:
    assert (posting_key(*a) == posting_key(*b)) == (a == b)


@settings(deadline=None)  # timing is not what these test
@given(parts)
def test_a_key_gives_back_its_parts(a: list[str]) -> None:
    assert key_parts(posting_key(*a)) == a


def test_a_hold_close_and_a_hold_named_like_it_differ() -> None:
    assert posting_key("hold", "x", "close") != posting_key("hold", "x:close")


def test_ids_without_colon_or_percent_keep_the_plain_key() -> None:
    assert posting_key("hold", "job_1") == "hold:job_1"
    assert posting_key("refund", "podcast_jobs", "j", 7) == "refund:podcast_jobs:j:7"


#: Ids as Stripe issues them (``cs_test_a1B2``, ``in_1Nx``, ``evt_3P``...): no ':' or '%'.
stripe_ids = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=1
)


@settings(deadline=None)  # timing is not what these test
@given(stripe_ids)
def test_stripe_keys_and_transaction_ids_are_unchanged_for_stripe_ids(sid: str) -> None:
    # The keys were f-strings before; postings already made must keep their transaction id.
    for built, old in (
        (checkout_key(sid), f"stripe:checkout:{sid}"),
        (invoice_key(sid), f"stripe:invoice:{sid}"),
        (event_key(sid), f"stripe:{sid}"),
    ):
        assert built == old
        assert transaction_id_for(built) == transaction_id_for(old)


def test_stripe_keys_of_different_causes_never_collide() -> None:
    # With f-strings an event id "checkout:cs_1" gave the checkout's own key.
    assert f"stripe:{'checkout:cs_1'}" == f"stripe:checkout:{'cs_1'}"
    assert event_key("checkout:cs_1") != checkout_key("cs_1")
    assert invoice_key("a:b") != invoice_key("a%3Ab")
