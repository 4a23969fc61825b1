"""The console's Profit, Money queue and Users pages and their actions (docs/console.md)."""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.console import auth
from shared.console.web import Page, client_ip, num, page, profile, required, response, stamp

MAX_RANGE_DAYS = 366
SLIP_STATUSES = ("PENDING", "REJECTED")
HOLDS_SHOWN = 50


# -- profit --------------------------------------------------------------------------------
def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Page(400, f"{text!r} is not a date (YYYY-MM-DD)") from None


def _months(start: date, end: date) -> list[date]:
    months, cursor = [], start.replace(day=1)
    while cursor <= end:
        months.append(cursor)
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    return months


def _usd(value: Any) -> Decimal:
    """An aggregate's USD figure as an exact decimal (0 when absent or not a number)."""
    if isinstance(value, bool):
        return Decimal(0)
    try:
        found = Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
    return found if found.is_finite() else Decimal(0)


def _count(value: Any) -> int:
    return int(_usd(value))


def _sum_by(docs: list[dict[str, Any]], field: str, figures: dict[str, str]) -> dict[str, Any]:
    """Sum the maps ``field.{name}.{figure}`` over ``docs`` (names sorted)."""
    out: dict[str, dict[str, Decimal]] = {}
    for data in docs:
        found = data.get(field)
        if not isinstance(found, dict):
            continue
        for name, entry in found.items():
            if not isinstance(entry, dict):
                continue
            slot = out.setdefault(str(name), {key: Decimal(0) for key in figures})
            for key, source in figures.items():
                slot[key] += _usd(entry.get(source))
    return dict(sorted(out.items()))


def profit(request: Any, operator: auth.Operator, **ctx: Any) -> Any:
    """Daily and monthly charts, cost by engine and plan mix over a date range."""
    from shared.analytics.rollups import AGGREGATES
    from shared.clients import firestore_client
    from shared.clock import get_clock

    today = get_clock().now().date()
    end = _day(request.args.get("end"), today)
    start = _day(request.args.get("start"), end - timedelta(days=30))
    if start > end or (end - start).days > MAX_RANGE_DAYS:
        raise Page(400, f"the range must run forward and span at most {MAX_RANGE_DAYS} days")
    db = firestore_client()
    coll = db.collection(AGGREGATES)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    months = _months(start, end)
    refs = [coll.document(f"daily_{d:%Y_%m_%d}") for d in days]
    refs += [coll.document(f"monthly_{m:%Y_%m}") for m in months]
    found = {snap.id: snap.to_dict() or {} for snap in db.get_all(refs) if snap.exists}

    def series(ids: list[tuple[str, str]]) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
        out: dict[str, list[Any]] = {k: [] for k in ("labels", "revenue", "cost", "profit")}
        out["margin"] = []
        rows = []
        for doc_id, label in ids:
            data = found.get(doc_id)
            if data is None:
                continue
            row = {
                "label": label,
                "revenue": num(data.get("total_revenue_usd")),
                "cost": num(data.get("total_cost_usd")),
                "profit": num(data.get("total_profit_usd")),
                "margin": num(data.get("profit_margin_percent")),
            }
            rows.append(row)
            for key in ("revenue", "cost", "profit", "margin", "label"):
                out["labels" if key == "label" else key].append(row[key])
        return out, rows

    daily, day_rows = series([(f"daily_{d:%Y_%m_%d}", d.isoformat()) for d in days])
    monthly, _ = series([(f"monthly_{m:%Y_%m}", f"{m:%Y-%m}") for m in months])
    daily_docs = [found[f"daily_{d:%Y_%m_%d}"] for d in days if f"daily_{d:%Y_%m_%d}" in found]
    engines = _sum_by(daily_docs, "cost_by_engine", {"cost": "cost_usd", "n": "usage_count"})
    revenue = _sum_by(
        daily_docs,
        "revenue_by_plan",
        {"revenue": "revenue_usd", "generations": "generation_count", "user_days": "user_count"},
    )
    profit_by = _sum_by(daily_docs, "profit_by_plan", {"profit": "profit_usd", "cost": "cost_usd"})
    plans = []
    for name in sorted(set(revenue) | set(profit_by)):
        r, p = revenue.get(name, {}), profit_by.get(name, {})
        rev, cost, prof = r.get("revenue", 0), p.get("cost", 0), p.get("profit", 0)
        plans.append(
            {
                "plan": name,
                "revenue": rev,
                "cost": cost,
                "profit": prof,
                "margin": (prof / rev * 100).quantize(Decimal("0.1")) if rev else None,
                "generations": int(r.get("generations", 0)),
                "user_days": int(r.get("user_days", 0)),
            }
        )
    charts = {
        "daily": daily,
        "monthly": monthly,
        "engines": {
            "labels": list(engines),
            "cost": [float(e["cost"]) for e in engines.values()],
        },
        "plans": {
            "labels": [p["plan"] for p in plans],
            "revenue": [float(p["revenue"]) for p in plans],
            "generations": [p["generations"] for p in plans],
        },
    }
    return page(
        request,
        "profit",
        operator,
        start=start.isoformat(),
        end=end.isoformat(),
        chart_json=json.dumps(charts).replace("<", "\\u003c"),
        days=day_rows,
        engines=[(name, {"cost": e["cost"], "n": int(e["n"])}) for name, e in engines.items()],
        plans=plans,
        **ctx,
    )


# -- money queue ---------------------------------------------------------------------------
def queue(request: Any, operator: auth.Operator, **ctx: Any) -> Any:
    """Parked Stripe events, slips to review, clawback shortfalls."""
    from shared.admin.operations import list_slips
    from shared.billing import list_parked_events, list_shortfalls
    from shared.clients import firestore_client

    db = firestore_client()
    parked = [
        {**e, "parked_at": stamp(e.get("parked_at") or e.get("created_at"))}
        for e in list_parked_events(db, limit=200)
    ]
    slips = [(status, list_slips(db, status=status, limit=100)) for status in SLIP_STATUSES]
    shortfalls = sorted(
        ({**s, "when": stamp(s.get("created_at"))} for s in list_shortfalls(db, limit=200)),
        key=lambda s: str(s.get("created_at") or ""),
        reverse=True,
    )
    return page(
        request, "queue", operator, parked=parked, slips=slips, shortfalls=shortfalls, **ctx
    )


def replay(request: Any, operator: auth.Operator) -> Any:
    from shared.admin.operations import replay_parked
    from shared.clients import firestore_client
    from shared.clock import get_clock

    event_id = required(request, "event_id", 255)
    outcome = replay_parked(
        firestore_client(),
        event_id=event_id,
        actor=operator.actor,
        reason=required(request, "reason"),
        now=get_clock().now(),
        ip_address=client_ip(request),
        profile=profile(request),
    )
    o = outcome.as_dict()
    return queue(request, operator, notice=f"{event_id}: {o.get('status')} {o.get('detail') or ''}")


def approve(request: Any, operator: auth.Operator) -> Any:
    from shared.bigeye.topup import approve_slip
    from shared.clients import firestore_client
    from shared.clock import get_clock

    slip_id = required(request, "slip_id", 200)
    amount_text = request.form.get("amount", "").strip()
    amount: float | None = None
    if amount_text:
        try:
            amount = float(amount_text)
        except ValueError:
            raise Page(400, "amount must be a number of baht") from None
    body = approve_slip(
        firestore_client(),
        slip_id=slip_id,
        actor=operator.actor,
        reason=required(request, "reason"),
        bank_ref=request.form.get("bank_ref", "").strip() or None,
        amount=amount,
        now=get_clock().now(),
        ip_address=client_ip(request),
    )
    return queue(
        request,
        operator,
        notice=f"approved {slip_id}: {body['added']:+d} credits, balance {body['credits']}",
    )


def reject(request: Any, operator: auth.Operator) -> Any:
    from shared.bigeye.topup import reject_slip
    from shared.clients import firestore_client
    from shared.clock import get_clock

    slip_id = required(request, "slip_id", 200)
    doc = reject_slip(
        firestore_client(),
        slip_id=slip_id,
        actor=operator.actor,
        reason=required(request, "reason"),
        now=get_clock().now(),
        ip_address=client_ip(request),
    )
    return queue(request, operator, notice=f"{slip_id} is {doc['status']}")


def slip_image(request: Any, operator: auth.Operator, slip_id: str) -> Any:
    from shared.bigeye import slipimages
    from shared.billing.context import safe_id
    from shared.clients import firestore_client

    ref = firestore_client().collection("slips").document(safe_id(slip_id, "slip id"))
    snap = ref.get()
    if not snap.exists:
        raise Page(404, f"no slip {slip_id}")
    image = slipimages.load(str((snap.to_dict() or {}).get("image_url") or ""))
    content_type = image.content_type if image.content_type.startswith("image/") else "image/jpeg"
    return response(image.content, 200, content_type)


# -- users ---------------------------------------------------------------------------------
def _find_user(profile_name: str, q: str) -> tuple[str, dict[str, Any]] | None:
    from google.cloud import firestore

    from shared.ledger import ledger_for

    ledger = ledger_for(profile_name)
    if "/" not in q and len(q) <= 200:
        snap = ledger.user_ref(q).get()
        if snap.exists:
            return snap.id, snap.to_dict() or {}
    if "@" in q:
        query = (
            ledger.user_ref("x")
            .parent.where(filter=firestore.FieldFilter("email", "==", q))
            .limit(1)
        )
        for snap in query.stream():
            return snap.id, snap.to_dict() or {}
    return None


def _open_holds(user_id: str) -> list[dict[str, Any]]:
    """The user's PENDING holds (open reservations), soonest to expire first."""
    from google.cloud import firestore

    from shared.clients import firestore_client
    from shared.ledger import HOLDS_COLLECTION

    query = (
        firestore_client()
        .collection(HOLDS_COLLECTION)
        .where(filter=firestore.FieldFilter("user_id", "==", user_id))
        .where(filter=firestore.FieldFilter("status", "==", "PENDING"))
        .limit(HOLDS_SHOWN)
    )
    rows = [{"hold_id": s.id, **(s.to_dict() or {})} for s in query.stream()]
    rows.sort(key=lambda h: str(h.get("expires_at") or ""))
    return [
        {**h, "expires_at": stamp(h.get("expires_at")), "created_at": stamp(h.get("created_at"))}
        for h in rows
    ]


def users(request: Any, operator: auth.Operator, status: int = 200, **ctx: Any) -> Any:
    """Find a user; balance, transactions, holds; adjust, reconcile, account actions."""
    from google.cloud import firestore

    from shared.ledger import ledger_for

    profile_name = profile(request)
    q = (request.values.get("q") or request.form.get("user_id") or "").strip()[:200]
    view = None
    transactions: list[dict[str, Any]] = []
    holds: list[dict[str, Any]] = []
    if q:
        hit = _find_user(profile_name, q)
        if hit is not None:
            user_id, data = hit
            p = ledger_for(profile_name).profile
            view = {
                "user_id": user_id,
                "email": data.get("email", ""),
                "balance": int(data.get(p.balance_field) or 0),
                "used": data.get(p.used_field),
                "status": data.get("status") or "active",
                "hardware_id": data.get("hardware_id") or "",
            }
            query = (
                ledger_for(profile_name)
                .db.collection(p.transactions_collection)
                .where(filter=firestore.FieldFilter("user_id", "==", user_id))
                .order_by("created_at", direction=firestore.Query.DESCENDING)
                .limit(50)
            )
            transactions = [
                {**(s.to_dict() or {}), "created_at": stamp((s.to_dict() or {}).get("created_at"))}
                for s in query.stream()
            ]
            holds = _open_holds(user_id)
    return page(
        request,
        "users",
        operator,
        status,
        q=q,
        user=view,
        transactions=transactions,
        holds=holds,
        profile=profile_name,
        accounts=profile_name == "bigeye",
        adjust_key=f"console:{secrets.token_urlsafe(16)}",
        **ctx,
    )


def _owned_user(profile_name: str, user_id: str) -> None:
    """Refuse a user whose document belongs to another app's profile (as the CLI does)."""
    from shared.ledger import ledger_for
    from shared.ledger.ownership import owner_of_user

    snap = ledger_for(profile_name).user_ref(user_id).get()
    owner = owner_of_user(snap.to_dict() or {}) if snap.exists else None
    if owner is not None and owner != profile_name:
        raise Page(409, f"user {user_id} belongs to the {owner} profile, not {profile_name}")


def adjust(request: Any, operator: auth.Operator) -> Any:
    from shared.admin import operations
    from shared.clock import get_clock
    from shared.ledger import ledger_for

    profile_name = profile(request)
    user_id = required(request, "user_id", 200)
    try:
        amount = int(required(request, "amount", 12))
    except ValueError:
        raise Page(400, "amount must be a whole number of credits") from None
    if amount == 0:
        raise Page(400, "amount must not be zero")
    reason = required(request, "reason")
    key = required(request, "key", 100)
    if not key.startswith("console:"):
        raise Page(400, "the form's key is not valid; reload the page")
    _owned_user(profile_name, user_id)
    done = operations.adjust(
        ledger_for(profile_name),
        user_id=user_id,
        amount=amount,
        actor=operator.actor,
        reason=reason,
        key=key,
        now=get_clock().now(),
        ip_address=client_ip(request),
    )
    r = done.result
    state = "already applied (nothing written)" if r.replayed else "done"
    return users(
        request, operator, notice=f"{state}: {r.amount:+d} to {user_id}, balance {r.balance_after}"
    )


def reconcile_user(request: Any, operator: auth.Operator) -> Any:
    """Reconcile one user now (``credits-admin reconcile USER_ID``): a report, no change."""
    from shared.clients import firestore_client
    from shared.clock import get_clock
    from shared.ledger.profiles import ledger_profile
    from shared.ledger.reconcile import reconcile

    profile_name = profile(request)
    user_id = required(request, "user_id", 200)
    if "/" in user_id:
        raise Page(400, "user id must not contain '/'")
    _owned_user(profile_name, user_id)
    now = get_clock().now()
    report = reconcile(
        firestore_client(),
        ledger_profile(profile_name),
        run_id=f"console_{now:%Y%m%dT%H%M%S%f}_{secrets.token_hex(4)}_{profile_name}",
        now=now,
        user_ids=[user_id],
    )
    found = "; ".join(f"{d.problem}: {d.detail}" for d in report.discrepancies[:10])
    summary = f"{report.transactions_checked} transactions (report {report.run_id})" + (
        f": {found}" if found else ""
    )
    if report.clean:
        return users(request, operator, notice=f"reconciled {user_id}: clean, {summary}")
    return users(request, operator, error=f"reconciled {user_id}: DRIFT, {summary}")


def form_user(request: Any) -> str:
    """The ``user_id`` of an account form (BigEye's accounts only)."""
    if profile(request) != "bigeye":
        raise Page(400, "suspend, ban, unban and device rebind are BigEye account actions")
    user_id = required(request, "user_id", 200)
    _owned_user("bigeye", user_id)
    return user_id
