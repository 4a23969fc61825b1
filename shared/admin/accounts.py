"""Operator actions on BigEye accounts and ``system_config/app_settings``.

Every effective change commits together with an ``admin_actions/{id}`` record (actor,
reason, before, after); asking for the state a document is already in changes nothing.

- ``set_user_status``: ``users.status`` ``active`` / ``suspended`` / ``banned``. The credit API
  refuses a suspended or banned user's every call (403) and login; unban = ``active``.
- ``rebind_device``: ``users.hardware_id`` = the new device. Tokens carry the device they
  were issued for (``hid``), and the API refuses a token whose device is not the user's
  current one, so every token of the old device stops working at once (401); the user logs
  in again on the new device.
- ``update_app_settings``: the fields an operator may edit, each validated for its type
  (``APP_SETTINGS_FIELDS``); ``updated_at`` is set, and ``prompts_updated_at`` /
  ``dictionary_updated_at`` (with ``dictionary_word_count``) follow their fields.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.cloud import firestore

from shared.admin.changes import Operator, doc_id, record, set_field, stamp, text
from shared.atomic import Unit, run_atomically
from shared.errors import InvalidInput, NotFound

USERS = "users"
USER_STATUSES = ("active", "suspended", "banned")
APP_SETTINGS = ("system_config", "app_settings")


def _user(
    db: firestore.Client,
    user_id: str,
    field: str,
    value: Any,
    action: str,
    who: Operator,
    default: Any = None,
) -> dict[str, Any]:
    ref = db.collection(USERS).document(doc_id(user_id, "user id"))
    done = set_field(
        db,
        ref,
        field=field,
        value=value,
        who=who,
        action=action,
        missing=f"unknown user {user_id}",
        default=default,
        details=lambda _: {"user_id": ref.id},
    )
    return {"user_id": ref.id, field: value, "changed": done.changed}


def set_user_status(
    db: firestore.Client,
    *,
    user_id: str,
    status: str,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Suspend, ban or unban (``active``) a BigEye user; returns the user's new fields.

    A blind field update: concurrent ledger postings on this user are not disturbed."""
    if status not in USER_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(USER_STATUSES)}")
    who = Operator.of(actor, reason, now, ip_address)
    action = f"user_{'unban' if status == 'active' else status}"
    return _user(db, user_id, "status", status, action, who, default="active")


def rebind_device(
    db: firestore.Client,
    *,
    user_id: str,
    hardware_id: str,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Bind the user to ``hardware_id``; every token of the previous device stops working."""
    who = Operator.of(actor, reason, now, ip_address)
    device = text(hardware_id, "hardware id", 200)
    return _user(db, user_id, "hardware_id", device, "device_rebind", who)


# -- app settings ----------------------------------------------------------------------------
def _positive_int(value: Any) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise InvalidInput("must be a whole number") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput("must be a positive whole number")
    return value


def _positive_number(value: Any) -> int | float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidInput("must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInput("must be a positive number")
    if value != value or value == float("inf"):
        raise InvalidInput("must be a finite number")
    return int(value) if float(value).is_integer() else float(value)


def _string(limit: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidInput("must be text")
        if len(value) > limit:
            raise InvalidInput(f"must be at most {limit} characters")
        return value

    return parse


def _version(value: Any) -> str:
    from shared.bigeye.models import check_version

    if not isinstance(value, str):
        raise InvalidInput("must be a version such as 2.0.1")
    try:
        return check_version(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _optional_version(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "null"}):
        return None
    return _version(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise InvalidInput("must be true or false")


def _word_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [w.strip() for w in value.split(",") if w.strip()]
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise InvalidInput("must be a list of words")
    return value


_RATE_NAMES = [f"{m}_{k}" for m in ("istock", "adobe", "shutterstock") for k in ("photo", "video")]

#: Every field of ``system_config/app_settings`` an operator may set, with its parser.
APP_SETTINGS_FIELDS: dict[str, Callable[[Any], Any]] = {
    **{f"credit_rates.{name}": _positive_int for name in _RATE_NAMES},
    "exchange_rate": _positive_number,
    "prompts.istock": _string(100_000),
    "prompts.hybrid": _string(100_000),
    "prompts.single": _string(100_000),
    "prompts_version": _string(100),
    "dictionary": _string(900_000),
    "dictionary_version": _string(100),
    "blacklist": _word_list,
    "app_latest_version": _version,
    "app_download_url": _string(2_000),
    "app_update_notes": _string(10_000),
    "force_update_below": _optional_version,
    "maintenance_mode": _boolean,
    "maintenance_message": _string(2_000),
    "context_cache_threshold": _positive_int,
    "max_concurrent_images": _positive_int,
    "max_concurrent_videos": _positive_int,
}


def _get(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def update_app_settings(
    db: firestore.Client,
    *,
    changes: dict[str, Any],
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Set some fields of ``system_config/app_settings`` (validated, audited).

    Returns ``{"changed": {field: [before, after]}}``; unknown fields and bad values are a
    400 with nothing written.
    """
    who = Operator.of(actor, reason, now, ip_address)
    if not changes:
        raise InvalidInput("give at least one field to change")
    parsed: dict[str, Any] = {}
    for name, raw in changes.items():
        parser = APP_SETTINGS_FIELDS.get(name)
        if parser is None:
            raise InvalidInput(f"{name} is not an editable app setting")
        try:
            parsed[name] = parser(raw)
        except InvalidInput as exc:
            raise InvalidInput(f"{name} {exc.detail}") from None
    ref = db.collection(APP_SETTINGS[0]).document(APP_SETTINGS[1])

    def work(unit: Unit) -> dict[str, Any]:
        snap = unit.get(ref)
        if not snap.exists:
            raise NotFound("system_config/app_settings does not exist")
        current = snap.to_dict() or {}
        diff = {k: [_get(current, k), v] for k, v in parsed.items() if _get(current, k) != v}
        if not diff:
            return {"changed": {}}
        fields: dict[str, Any] = {k: v for k, (_, v) in diff.items()}
        fields["updated_at"] = now
        if any(k.startswith("prompts.") or k == "prompts_version" for k in diff):
            fields["prompts_updated_at"] = now
        if "dictionary" in diff:
            fields["dictionary_word_count"] = len(str(fields["dictionary"]).split())
            fields["dictionary_updated_at"] = now
        unit.update(ref, fields)
        record(
            unit,
            f"app_settings_{stamp(now)}",
            {
                **who.fields("app_settings"),
                # Long texts (prompts, dictionary) are recorded by size, not copied.
                "changes": {
                    k: {"before": _short(before), "after": _short(after)}
                    for k, (before, after) in diff.items()
                },
            },
        )
        return {"changed": diff}

    return run_atomically(db, work)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 200:
        return f"<{len(value)} characters>"
    return value


def show_app_settings(db: firestore.Client) -> dict[str, Any]:
    """The editable fields of ``system_config/app_settings`` as they are now."""
    snap = db.collection(APP_SETTINGS[0]).document(APP_SETTINGS[1]).get()
    if not snap.exists:
        raise NotFound("system_config/app_settings does not exist")
    data = snap.to_dict() or {}
    return {name: _short(_get(data, name)) for name in APP_SETTINGS_FIELDS}


# -- loss users ------------------------------------------------------------------------------
LOSS_USERS = "loss_users"
LOSS_ACTIONS = ("monitored", "rate_limited", "plan_upgraded")


def set_loss_action(
    db: firestore.Client,
    *,
    user_id: str,
    action: str | None,
    actor: str,
    reason: str,
    now: datetime,
    ip_address: str | None = None,
) -> dict[str, Any]:
    """Set ``loss_users/{user_id}.action_taken`` (``None`` clears it), with ``notes`` = reason.

    ``rate_limited`` makes usage-limits apply ``LOSS_RATE_LIMITED_DAILY_TOKENS`` until the
    action is cleared (or the user recovers and the scan removes the entry); ``monitored``
    and ``plan_upgraded`` are recorded. Audited in ``admin_actions``.
    """
    if action is not None and action not in LOSS_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(LOSS_ACTIONS)} (or cleared)")
    who = Operator.of(actor, reason, now, ip_address)
    ref = db.collection(LOSS_USERS).document(doc_id(user_id, "user id"))
    done = set_field(
        db,
        ref,
        field="action_taken",
        value=action,
        who=who,
        action="loss_action",
        missing=f"{user_id} is not in loss_users",
        also={"notes": who.reason},
        details=lambda _: {"user_id": ref.id},
    )
    return {"user_id": ref.id, "action_taken": action, "changed": done.changed}


def list_loss_users(db: firestore.Client, limit: int = 200) -> list[dict[str, Any]]:
    """Users in loss now, most negative profit first."""
    rows = [{"user_id": s.id, **(s.to_dict() or {})} for s in db.collection(LOSS_USERS).stream()]
    rows.sort(key=lambda r: float(r.get("total_profit_usd") or 0))
    return rows[:limit]
