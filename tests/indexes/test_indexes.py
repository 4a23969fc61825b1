"""``firestore.indexes.json`` against the seeds' index lists and the project's own queries.

The emulator serves queries without indexes, production does not. Three checks:
- every composite index a seed lists is declared;
- every composite query the code runs (declared below, one line per query site) is
  covered, using Firestore's selection rule (``devstack.indexes``);
- at run time, ``tests/chaos`` records every query the handlers, crons and the admin CLI
  actually send and checks each against the file, so a query nobody listed here fails too.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from devstack.indexes import (
    ASC,
    DESC,
    INDEXES_FILE,
    Index,
    IndexField,
    QueryShape,
    covers,
    index_json,
    load_indexes,
    missing_indexes,
    needs_composite,
)


def q(
    collection: str,
    eq: tuple[str, ...] = (),
    ranges: tuple[str, ...] = (),
    orders: tuple[tuple[str, str], ...] = (),
) -> QueryShape:
    return QueryShape(collection, frozenset(eq), ranges, orders)


# The composite indexes the seeds list ("Indexes:" / "Database Indexes" sections).
SEED_INDEXES: list[tuple[str, tuple[tuple[str, str], ...]]] = [
    ("credit_transactions", (("user_id", ASC), ("created_at", DESC))),  # 000
    ("transactions", (("user_id", ASC), ("created_at", DESC))),  # 004 history
    ("ai_engine_costs", (("ai_type", ASC), ("is_active", ASC))),  # 002
    ("ai_engine_costs", (("provider_name", ASC), ("updated_at", DESC))),
    ("usage_logs", (("user_id", ASC), ("created_at", DESC))),
    ("usage_logs", (("subscription_plan", ASC), ("created_at", DESC))),
    ("usage_logs", (("engine_id", ASC), ("created_at", DESC))),
    ("usage_logs", (("profit_usd", ASC), ("created_at", DESC))),
    ("profit_aggregates", (("period_type", ASC), ("period_start", DESC))),
    ("loss_users", (("subscription_plan", ASC), ("profit_margin_percent", ASC))),
    ("daily_token_usage", (("userId", ASC), ("date", DESC))),  # 003
    ("daily_token_usage", (("userId", ASC), ("lastUpdated", DESC))),
    ("daily_token_usage", (("userType", ASC), ("date", DESC))),
    ("daily_token_usage", (("date", ASC), ("tokensUsed", DESC))),
    ("token_usage_history", (("userId", ASC), ("year", DESC), ("month", DESC))),
    ("token_usage_history", (("userType", ASC), ("year", DESC), ("month", DESC))),
    ("token_usage_history", (("year", DESC), ("month", DESC), ("totalMonthlyTokens", DESC))),
    ("token_usage_history", (("userId", ASC), ("updatedAt", DESC))),
]

# Every query the project's code runs that filters and orders (file: what it is for).
PROJECT_QUERIES: list[QueryShape] = [
    # shared/bigeye/history.py: GET /api/v1/credit/history
    q("transactions", ("user_id",), orders=(("created_at", DESC), ("__name__", DESC))),
    # shared/bigeye/jobs.py: cron-expire-jobs
    q("jobs", ("status",), ("expires_at",), (("expires_at", ASC),)),
    # shared/ledgerapi/service.py: ledger-api history, and cron-expire-jobs for its holds
    q("credit_transactions", ("user_id",), orders=(("created_at", DESC), ("__name__", DESC))),
    q("credit_holds", ("status",), ("expires_at",), (("expires_at", ASC),)),
    # shared/bigeye/topup.py: cron-reverify-slips
    q("slips", ("status",), ("created_at",), (("created_at", ASC),)),
    # shared/admin/operations.py: credits-admin slips list
    q("slips", ("status",), orders=(("created_at", ASC),)),
    # shared/usage/config.py: engine cost in force at a time, and the earliest version
    q(
        "ai_engine_cost_history",
        ("engine_id",),
        ("effective_from",),
        (("effective_from", DESC),),
    ),
    q("ai_engine_cost_history", ("engine_id",), orders=(("effective_from", ASC),)),
    # devstack/admin.py: credits-admin history (both ledgers)
    q("credit_transactions", ("user_id",), orders=(("created_at", DESC),)),
    q("transactions", ("user_id",), orders=(("created_at", DESC),)),
    # 003's example queries
    q("token_usage_history", ("userId",), orders=(("year", DESC), ("month", DESC))),
    q("daily_token_usage", ("date",), orders=(("tokensUsed", DESC),)),
    # Single-field queries (no composite needed; listed to document them).
    q("usage_logs", ranges=("created_at",)),  # shared/analytics/rollups.py count
    q("usage_logs", ranges=("created_at",), orders=(("created_at", ASC),)),  # retention
    q("learningPathPreviews", ("status",), orders=(("__name__", ASC),)),  # retention
    q("model_quotas", ranges=("reset_at",)),  # shared/providers cron-reset-quotas
    q("credit_transactions", ("job_id",)),  # shared/jobs.py failed-job refunds
]


def test_file_is_valid_and_has_no_duplicates() -> None:
    data = json.loads(INDEXES_FILE.read_text())
    assert set(data) == {"indexes", "fieldOverrides"}
    keys = Counter(json.dumps(i, sort_keys=True) for i in data["indexes"])
    assert [k for k, n in keys.items() if n > 1] == []
    for entry in data["indexes"]:
        assert entry["queryScope"] in {"COLLECTION", "COLLECTION_GROUP"}
        assert len(entry["fields"]) >= 2, entry


@pytest.mark.parametrize(("collection", "fields"), SEED_INDEXES)
def test_every_seed_index_is_declared(collection: str, fields: tuple[tuple[str, str], ...]) -> None:
    wanted = Index(collection, tuple(IndexField(f, d) for f, d in fields))
    assert wanted in load_indexes(), f"{collection} {fields} missing"


def test_every_project_query_is_served() -> None:
    missing = missing_indexes(PROJECT_QUERIES, load_indexes())
    assert missing == [], "add to firestore.indexes.json:\n" + "\n".join(
        json.dumps(index_json(s)) for s in missing
    )


def test_selection_rule() -> None:
    index = Index("usage_logs", (IndexField("user_id", ASC), IndexField("created_at", DESC)))
    assert not needs_composite(q("usage_logs", ("user_id", "engine_id")))
    assert not needs_composite(q("usage_logs", ranges=("created_at",)))
    assert not needs_composite(q("usage_logs", orders=(("created_at", DESC),)))
    assert needs_composite(q("usage_logs", ("user_id",), orders=(("created_at", DESC),)))
    assert needs_composite(q("usage_logs", ("user_id",), ranges=("created_at",)))
    assert needs_composite(q("x", orders=(("a", ASC), ("b", DESC))))
    assert covers(index, q("usage_logs", ("user_id",), orders=(("created_at", DESC),)))
    # Direction, field order, equality set and collection must all match.
    assert not covers(index, q("usage_logs", ("user_id",), orders=(("created_at", ASC),)))
    assert not covers(index, q("usage_logs", ("user_id",), ranges=("created_at",)))
    assert not covers(
        index, q("usage_logs", ("user_id", "engine_id"), orders=(("created_at", DESC),))
    )
    assert not covers(index, q("usage_log", ("user_id",), orders=(("created_at", DESC),)))
    # An order on an equality field adds nothing; a trailing __name__ is implicit.
    assert not needs_composite(q("a", ("status",), orders=(("status", ASC),)))
    assert covers(
        index,
        q("usage_logs", ("user_id",), orders=(("created_at", DESC), ("__name__", DESC))),
    )
    suggestion = index_json(q("jobs", ("status",), ("expires_at",)))
    assert suggestion["fields"] == [
        {"fieldPath": "status", "order": ASC},
        {"fieldPath": "expires_at", "order": ASC},
    ]


def test_recorded_shapes_from_the_client(db: Any) -> None:
    """The recorder reads real client queries (the chaos run relies on it)."""
    from google.cloud import firestore

    from tests.indexes.recorder import recording

    with recording() as rec:
        coll = db.collection("credit_transactions")
        list(
            coll.where(filter=firestore.FieldFilter("user_id", "==", "u"))
            .order_by("created_at", direction=firestore.Query.DESCENDING)
            .stream()
        )
        coll.where(filter=firestore.FieldFilter("created_at", ">=", 1)).count().get()
    assert q("credit_transactions", ("user_id",), orders=(("created_at", DESC),)) in rec.shapes
    assert q("credit_transactions", ranges=("created_at",)) in rec.shapes
    assert missing_indexes(list(rec.shapes), load_indexes()) == []
