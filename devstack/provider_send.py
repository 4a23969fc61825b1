"""Publish model-provider call events to a running ``make run`` stack and show their effect.

    python -m devstack.provider_send                                  # one successful call
    python -m devstack.provider_send --outcome failure --count 12     # enough to open the breaker

Each event is the ``provider-events`` message of docs/contract.md with a fresh ``event_id``
(or ``--event-id`` to send a duplicate). The command waits for each event's outcome on the
functions server, then prints the provider's ``model_provider_health`` and
``circuit_breakers`` documents.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from devstack.preflight import local_env, require_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.provider_send")
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--task-type", default="LLM", choices=["LLM", "TTS", "TRANSCRIPTION"])
    parser.add_argument("--outcome", default="success", help="success, failure, timeout, ...")
    parser.add_argument("--latency-ms", type=float, default=812)
    parser.add_argument("--tokens", type=int, default=1200)
    parser.add_argument("--cost-usd", default="0.012")
    parser.add_argument("--error", default=None, help="the error text of a failed call")
    parser.add_argument("--count", type=int, default=1, help="send this many events")
    parser.add_argument("--event-id", default=None, help="reuse an id (a duplicate)")
    args = parser.parse_args(argv)
    local_env()
    require_or_exit(firestore=True, pubsub=True, functions=True)
    from devstack.trigger import outcome, publish, wait_outcome
    from shared.clients import firestore_client

    rejected = 0
    for n in range(max(1, args.count)):
        message: dict[str, Any] = {
            "event_id": args.event_id or f"pe-{uuid.uuid4().hex[:12]}",
            "provider": args.provider,
            "model_id": args.model,
            "task_type": args.task_type,
            "outcome": args.outcome,
            "latency_ms": args.latency_ms,
            "tokens": args.tokens,
            "cost_usd": float(args.cost_usd),
            "error": args.error
            if args.error is not None or args.outcome == "success"
            else f"demo {args.outcome}",
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        before = outcome(message["event_id"])
        publish("provider-events", message)
        found = wait_outcome(message["event_id"], wait_s=30, after=before)
        if found is None:
            print(
                f"error: no outcome for event_id={message['event_id']} after 30 s; "
                "see the `make run` terminal",
                file=sys.stderr,
            )
            return 1
        if found["outcome"] != "done":
            rejected += 1
            print(
                f"{found['outcome']}: event_id={message['event_id']}: {found['reason']}",
                file=sys.stderr,
            )
            continue
        fields = found.get("fields") or {}
        print(
            f"{n + 1}: event_id={message['event_id']} {args.outcome}: status={fields.get('status')}"
            f" breaker={fields.get('breaker')} duplicate={fields.get('duplicate')}"
        )
    db = firestore_client()
    for collection in ("model_provider_health", "circuit_breakers"):
        snap = db.collection(collection).document(args.provider).get()
        shown = json.dumps(snap.to_dict(), default=str, sort_keys=True) if snap.exists else "-"
        print(f"{collection}/{args.provider}: {shown}")
    return 1 if rejected else 0


if __name__ == "__main__":
    sys.exit(main())
