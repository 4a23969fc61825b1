"""Publish one usage event to a running ``make run`` stack and show what it became.

    python -m devstack.usage_send                       # the docs/contract.md example message
    python -m devstack.usage_send --engine dalle_3_standard --units 3 --credits 2

The Pub/Sub and Firestore emulators are found through ``PUBSUB_EMULATOR_HOST`` and
``FIRESTORE_EMULATOR_HOST`` (defaults 127.0.0.1:8085 / 127.0.0.1:8080, project
``demo-credits``). The demo user (``demo_usage_user``, given 100 demo credits the first
time) is metered; the command prints the usage log, the deduction and the daily
token counter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from typing import Any

from devstack.preflight import local_env, require_or_exit
from devstack.trigger import outcome as stack_outcome

DEMO_USER = "demo_usage_user"
WAIT_S = 30.0


def _ensure_user(user_id: str) -> None:
    from shared.ledger import Kind, ledger_for, posting_key

    ledger = ledger_for()
    ref = ledger.user_ref(user_id)
    if not ref.get().exists:
        fields: dict[str, Any] = {"email": f"{user_id}@example.com", "tier": "PRO"}
        fields[ledger.profile.balance_field] = 0
        ref.set(fields)
    ledger.run(
        lambda unit: ledger.credit(
            unit,
            user_id=user_id,
            kind=Kind.BONUS,
            amount=100,
            key=posting_key("demo", user_id, "welcome"),
            description="Demo credits for usage metering",
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.usage_send")
    parser.add_argument("--user", default=DEMO_USER)
    parser.add_argument("--engine", default="openai_chat_gpt4")
    parser.add_argument("--units", type=float, default=2.5)
    parser.add_argument("--credits", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=2500)
    parser.add_argument("--request-id", default=None)
    args = parser.parse_args(argv)
    local_env()
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    # The event travels Pub/Sub -> push -> the functions server -> Firestore: all must be up.
    require_or_exit(firestore=True, pubsub=True, functions=True)
    from shared.clients import firestore_client, publisher_client
    from shared.ledger import ledger_for
    from shared.settings import get_settings
    from shared.usage.config import refs
    from shared.usage.pricing import token_day, usage_log_id

    _ensure_user(args.user)
    request_id = args.request_id or f"gen-{uuid.uuid4().hex[:8]}"
    message = {
        "request_id": request_id,
        "user_id": args.user,
        "engine_id": args.engine,
        "usage_units": args.units,
        "credits_used": args.credits,
        "tokens": args.tokens,
        "request_meta": {"country_code": "TH", "device_type": "web", "generation_time_ms": 812},
    }
    publisher = publisher_client()
    topic = publisher.topic_path(get_settings().google_cloud_project, "usage-events")
    publisher.publish(topic, json.dumps(message).encode()).result(timeout=30)
    print(f"published to usage-events: {json.dumps(message)}")
    db = firestore_client()
    log_ref = refs(db).log(usage_log_id(request_id))
    deadline = time.monotonic() + WAIT_S
    while not (snap := log_ref.get()).exists:
        outcome = stack_outcome(request_id)
        if outcome and outcome["outcome"] in ("rejected", "dropped"):
            print(
                f"{outcome['outcome']}: request_id={request_id} by {outcome['function']}: "
                f"{outcome['reason']}",
                file=sys.stderr,
            )
            raise SystemExit(1)
        if time.monotonic() > deadline:
            last = f" (last outcome: {outcome['outcome']}: {outcome['reason']})" if outcome else ""
            print(
                f"error: no usage log for request_id={request_id} after {WAIT_S:.0f} s{last}; "
                "see the `make run` terminal",
                file=sys.stderr,
            )
            raise SystemExit(1)
        time.sleep(0.2)
    log = snap.to_dict() or {}
    print(f"usage_logs/{snap.id}: " + json.dumps(log, default=str, sort_keys=True))
    ledger = ledger_for()
    if log.get("transaction_id"):
        tx = ledger.transaction_ref(log["transaction_id"]).get().to_dict()
        print(
            f"{ledger.profile.transactions_collection}/{log['transaction_id']}: "
            + json.dumps(tx, default=str, sort_keys=True)
        )
    day, _ = token_day(log["created_at"], get_settings().token_day_timezone)
    daily = refs(db).daily(args.user, day).get()
    print(
        f"daily_token_usage/{daily.id}: " + json.dumps(daily.to_dict(), default=str, sort_keys=True)
    )
    print(f"balance of {args.user}: {ledger.balance(args.user)}")


if __name__ == "__main__":
    main()
