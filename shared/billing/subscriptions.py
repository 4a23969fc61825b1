"""``customer.subscription.*``: the subscription's state, whatever the delivery order.

Read ``stripe_subscription_state/{id}`` (the order key of the latest applied state) and the
user; decide with ``rules.order_key`` / ``is_newer`` (an older state only records itself);
apply the snapshot to ``subscriptions`` and the user's fields under the schema profile.
"""

from __future__ import annotations

from typing import Any

from shared.atomic import Unit
from shared.billing.attribution import link_customer, resolve_user
from shared.billing.context import (
    STATE,
    SUBSCRIPTIONS,
    Context,
    Outcome,
    done,
    safe_id,
    update_user,
)
from shared.billing.events import Subscription
from shared.billing.rules import (
    SubscriptionSnapshot,
    Unresolvable,
    granted_this_period,
    is_newer,
    kaiwa_id,
    kaiwa_subscription_doc,
    kitesforu_subscription_doc,
    kitesforu_user_fields,
    order_key,
    stored_key,
    subscription_plan,
)


def subscription_state(
    unit: Unit, ctx: Context, subscription_id: str
) -> tuple[Any, dict[str, Any]]:
    ref = ctx.db.collection(STATE).document(safe_id(subscription_id, "subscription id"))
    snap = unit.get(ref)
    return ref, (snap.to_dict() or {}) if snap.exists else {}


def write_subscription(
    unit: Unit, ctx: Context, snap: SubscriptionSnapshot, user_id: str, granted: list[int]
) -> None:
    if ctx.profile == "kaiwa":
        kaiwa_ref = ctx.db.collection(SUBSCRIPTIONS).document(
            kaiwa_id("subscription", snap.subscription_id)
        )
        unit.set(kaiwa_ref, kaiwa_subscription_doc(snap, user_id))
        return
    ref = ctx.db.collection(SUBSCRIPTIONS).document(snap.subscription_id)
    unit.set(
        ref,
        kitesforu_subscription_doc(snap, granted_this_period(snap.current_period_start, granted)),
    )
    if ctx.profile == "kitesforu":
        update_user(unit, ctx, user_id, kitesforu_user_fields(snap))


def subscription_event(unit: Unit, ctx: Context, sub: Subscription) -> Outcome:
    state_ref, state = subscription_state(unit, ctx, sub.id)
    user_id, user = resolve_user(
        unit,
        ctx,
        named=[
            ("subscription metadata.user_id", sub.metadata.get("user_id")),
            ("stripe_subscription_state", state.get("user_id")),
        ],
        customer=sub.customer,
    )
    if sub.price is None:
        raise Unresolvable(f"subscription {sub.id} has no price")
    plan = subscription_plan(sub.price, ctx.config, ctx.profile)
    deleted = ctx.event.type == "customer.subscription.deleted"
    key = order_key(ctx.event.created, ctx.event.type, ctx.event.id)
    if state.get("deleted") or (not deleted and not is_newer(key, stored_key(state))):
        return done(
            unit,
            ctx,
            "stale",
            user_id=user_id,
            object_id=sub.id,
            detail="an equal or newer state is already stored",
        )
    start, end = sub.period
    snap = SubscriptionSnapshot(
        subscription_id=sub.id,
        customer_id=sub.customer,
        status="canceled" if deleted else sub.status,
        price_id=plan.price_id,
        tier=plan.tier,
        monthly_credits=plan.monthly_credits,
        current_period_start=start,
        current_period_end=end,
        cancel_at_period_end=sub.cancel_at_period_end,
    )
    granted = list(state.get("granted_periods") or [])
    unit.set(
        state_ref,
        {
            "subscription_id": sub.id,
            "user_id": user_id,
            "customer_id": sub.customer,
            "event_created": key[0],
            "event_rank": key[1],
            "event_id": key[2],
            "snapshot": snap.as_dict(),
            "granted_periods": granted,
            "deleted": deleted,
            "updated_at": ctx.now,
        },
    )
    write_subscription(unit, ctx, snap, user_id, granted)
    link_customer(unit, ctx, user_id, user, sub.customer)
    return done(unit, ctx, "applied", user_id=user_id, object_id=sub.id)
