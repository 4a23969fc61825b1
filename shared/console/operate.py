"""The console's Loss users, Providers, Promotions and settings pages, and BigEye account
actions on the Users page (docs/console.md).

Each action is one call of the service ``credits-admin`` calls for the same command; the
service validates, audits (``admin_actions``, with the operator's address where it records
``ip_address``) and commits atomically. A page only reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.console import auth
from shared.console.pages import form_user, users
from shared.console.web import Page, client_ip, optional, page, required, stamp
from shared.errors import NotFound

if TYPE_CHECKING:
    from google.cloud import firestore

LOSS_CHOICES = ("monitored", "rate_limited", "plan_upgraded", "clear")
PROMOTION_CHANGES = ("pause", "resume", "cancel")
PROVIDER_ROWS = 500


def _db() -> firestore.Client:
    from shared.clients import firestore_client

    return firestore_client()


def _now() -> Any:
    from shared.clock import get_clock

    return get_clock().now()


def _audit(request: Any, operator: auth.Operator) -> dict[str, Any]:
    """What every operator action passes to its service for the audit record: the actor,
    the form's required reason, the time and the operator's address."""
    return {
        "actor": operator.actor,
        "reason": required(request, "reason"),
        "now": _now(),
        "ip_address": client_ip(request),
    }


# -- loss users ----------------------------------------------------------------------------
def loss(request: Any, operator: auth.Operator, **ctx: Any) -> Any:
    """Users in loss now (most negative profit first), days in loss, the action taken."""
    from shared.admin.accounts import list_loss_users
    from shared.settings import get_settings

    rows = [
        {
            **r,
            "detected_at": stamp(r.get("detected_at")),
            "last_checked_at": stamp(r.get("last_checked_at")),
        }
        for r in list_loss_users(_db())
    ]
    return page(
        request,
        "loss",
        operator,
        title="Loss users",
        rows=rows,
        choices=LOSS_CHOICES,
        limited_tokens=get_settings().loss_rate_limited_daily_tokens,
        **ctx,
    )


def loss_action(request: Any, operator: auth.Operator) -> Any:
    from shared.admin.accounts import set_loss_action

    user_id = required(request, "user_id", 200)
    action = required(request, "action", 20)
    if action not in LOSS_CHOICES:
        raise Page(400, f"action must be one of {', '.join(LOSS_CHOICES)}")
    view = set_loss_action(
        _db(),
        user_id=user_id,
        action=None if action == "clear" else action,
        **_audit(request, operator),
    )
    state = "" if view["changed"] else " (unchanged)"
    return loss(request, operator, notice=f"{user_id}: action_taken {view['action_taken']}{state}")


# -- providers -----------------------------------------------------------------------------
def _quota_view(q: dict[str, Any]) -> dict[str, Any]:
    """Cost quotas are counted in micro-dollars; shown in USD."""
    if q.get("quota_type") == "cost":
        return {
            **q,
            "limit": f"${int(q.get('limit') or 0) / 1_000_000:,.2f}",
            "used": f"${int(q.get('used') or 0) / 1_000_000:,.2f}",
            "remaining": f"${int(q.get('remaining') or 0) / 1_000_000:,.2f}",
        }
    return q


def providers(request: Any, operator: auth.Operator, **ctx: Any) -> Any:
    """Health, circuit breakers, quotas, open router alerts, the pipeline flags."""
    from shared.admin.router import list_alerts, show_pipeline_flags
    from shared.providers.service import BREAKERS, HEALTH, QUOTAS

    db = _db()

    def read(collection: str) -> list[dict[str, Any]]:
        snaps = db.collection(collection).limit(PROVIDER_ROWS).stream()
        return sorted(({"id": s.id, **(s.to_dict() or {})} for s in snaps), key=lambda d: d["id"])

    breakers = [
        {**b, "opened_at": stamp(b.get("opened_at")), "next": stamp(b.get("next_attempt_at"))}
        for b in read(BREAKERS)
    ]
    alerts = [
        {**a, "created_at": stamp(a.get("created_at"))}
        for a in list_alerts(db, include_acknowledged=False)
    ]
    return page(
        request,
        "providers",
        operator,
        health=read(HEALTH),
        breakers=breakers,
        quotas=[{**_quota_view(q), "reset_at": stamp(q.get("reset_at"))} for q in read(QUOTAS)],
        alerts=alerts,
        flags=show_pipeline_flags(db),
        **ctx,
    )


def alert_ack(request: Any, operator: auth.Operator) -> Any:
    from shared.admin.router import acknowledge_alert

    alert_id = required(request, "alert_id", 300)
    view = acknowledge_alert(
        _db(),
        alert_id=alert_id,
        **_audit(request, operator),
    )
    state = "acknowledged" if view["changed"] else "was already acknowledged"
    return providers(request, operator, notice=f"{alert_id} {state}")


def pipeline_flag(request: Any, operator: auth.Operator) -> Any:
    from shared.admin.router import set_pipeline_flag

    flag = required(request, "flag", 100)
    value = required(request, "value", 5)
    if value not in ("true", "false"):
        raise Page(400, "value must be true or false")
    view = set_pipeline_flag(
        _db(),
        flag=flag,
        value=value == "true",
        **_audit(request, operator),
    )
    state = "" if view["changed"] else " (unchanged)"
    return providers(request, operator, notice=f"{flag}: {str(view['value']).lower()}{state}")


# -- promotions and settings ---------------------------------------------------------------
def promotions(request: Any, operator: auth.Operator, **ctx: Any) -> Any:
    """Every promotion, the create form, and ``system_config/app_settings``."""
    from shared.admin.accounts import APP_SETTINGS_FIELDS, show_app_settings
    from shared.admin.operations import list_promotions
    from shared.admin.promotion_form import PROMO_TYPES

    db = _db()
    rows = []
    for p in list_promotions(db):
        found = p.get("conditions")
        conditions: dict[str, Any] = found if isinstance(found, dict) else {}
        rows.append(
            {
                **p,
                "start": stamp(conditions.get("start_date")),
                "end": stamp(conditions.get("end_date")),
                "redemptions": (p.get("stats") or {}).get("total_redemptions", 0)
                if isinstance(p.get("stats"), dict)
                else 0,
                "reward_type": (p.get("reward") or {}).get("type")
                if isinstance(p.get("reward"), dict)
                else None,
            }
        )
    try:
        app_settings: dict[str, Any] | None = show_app_settings(db)
    except NotFound:
        app_settings = None
    return page(
        request,
        "promotions",
        operator,
        title="Promotions and settings",
        rows=rows,
        types=PROMO_TYPES,
        changes=PROMOTION_CHANGES,
        app_settings=app_settings,
        fields=list(APP_SETTINGS_FIELDS),
        # A refused creation shows the form again with what was typed.
        form=request.form if request.method == "POST" and "error" in ctx else {},
        **ctx,
    )


def _int(request: Any, name: str, minimum: int | None = 0) -> int | None:
    text = optional(request, name, 20)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise Page(400, f"{name} must be a whole number") from None
    if minimum is not None and value < minimum:
        raise Page(400, f"{name} must be at least {minimum}")
    return value


def _float(request: Any, name: str) -> float | None:
    text = optional(request, name, 20)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Page(400, f"{name} must be a number") from None
    if not 0 <= value < float("inf"):
        raise Page(400, f"{name} must be a finite number, at least 0")
    return value


def _instant(request: Any, name: str) -> Any:
    from shared.clock import parse_instant

    text = optional(request, name, 40)
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise Page(400, f"{name} {text!r} is not a date and time (UTC)") from None


def promotion_create(request: Any, operator: auth.Operator) -> Any:
    from shared.admin import operations
    from shared.admin.promotion_form import parse_tiers, promotion_document

    promo_id = required(request, "promo_id", 200)
    if "/" in promo_id:
        raise Page(400, "promo_id must not contain '/'")
    document = promotion_document(
        name=required(request, "name", 200),
        type_=required(request, "type", 40),
        status=required(request, "status", 20),
        priority=_int(request, "priority", None) or 0,
        start=_instant(request, "start"),
        end=_instant(request, "end"),
        code=optional(request, "code", 100),
        min_baht=_int(request, "min_baht"),
        max_baht=_int(request, "max_baht"),
        max_redemptions=_int(request, "max_redemptions", 1),
        max_per_user=_int(request, "max_per_user", 1),
        new_users_only=request.form.get("new_users_only") == "on",
        first_topup_only=request.form.get("first_topup_only") == "on",
        bonus_credits=_int(request, "bonus_credits", 1),
        bonus_percentage=_float(request, "bonus_percentage"),
        override_rate=_float(request, "override_rate"),
        tiers=parse_tiers(optional(request, "tiers", 2000)),
        banner_text=optional(request, "banner_text", 500) or "",
        banner_color=optional(request, "banner_color", 20) or "#FF4560",
    )
    doc = operations.create_promotion(
        _db(),
        promo_id=promo_id,
        document=document,
        actor=operator.actor,
        now=_now(),
        ip_address=client_ip(request),
    )
    return promotions(request, operator, notice=f"created {promo_id} ({doc['status']})")


def promotion_change(request: Any, operator: auth.Operator) -> Any:
    """Pause, resume or cancel (``credits-admin promotions pause|resume|cancel``)."""
    from shared.admin import operations

    promo_id = required(request, "promo_id", 200)
    change = required(request, "change", 20)
    if change not in PROMOTION_CHANGES:
        raise Page(400, f"change must be one of {', '.join(PROMOTION_CHANGES)}")
    service = getattr(operations, f"{change}_promotion")
    doc = service(
        _db(),
        promo_id=promo_id,
        **_audit(request, operator),
    )
    return promotions(request, operator, notice=f"{promo_id} is {doc['status']}")


def settings_update(request: Any, operator: auth.Operator) -> Any:
    """Set one field of ``system_config/app_settings`` (``credits-admin app-settings set``)."""
    from shared.admin.accounts import update_app_settings

    field = required(request, "field", 100)
    value = request.form.get("value", "")
    if len(value) > 1_000_000:
        raise Page(400, "value is longer than 1,000,000 characters")
    result = update_app_settings(
        _db(),
        changes={field: value},
        **_audit(request, operator),
    )
    if not result["changed"]:
        return promotions(request, operator, notice=f"{field}: unchanged (already that value)")
    return promotions(request, operator, notice=f"{field} changed")


# -- BigEye accounts (Users page) ----------------------------------------------------------
ACCOUNT_STATUS = {"suspend": "suspended", "ban": "banned", "unban": "active"}


def account_status(request: Any, operator: auth.Operator) -> Any:
    from shared.admin.accounts import set_user_status

    user_id = form_user(request)
    change = required(request, "change", 20)
    if change not in ACCOUNT_STATUS:
        raise Page(400, f"change must be one of {', '.join(ACCOUNT_STATUS)}")
    view = set_user_status(
        _db(),
        user_id=user_id,
        status=ACCOUNT_STATUS[change],
        **_audit(request, operator),
    )
    state = "now" if view["changed"] else "already"
    return users(request, operator, notice=f"{user_id} is {state} {view['status']}")


def account_rebind(request: Any, operator: auth.Operator) -> Any:
    from shared.admin.accounts import rebind_device

    user_id = form_user(request)
    view = rebind_device(
        _db(),
        user_id=user_id,
        hardware_id=required(request, "hardware_id", 200),
        **_audit(request, operator),
    )
    state = "now" if view["changed"] else "already"
    return users(request, operator, notice=f"{user_id} is {state} bound to {view['hardware_id']}")
