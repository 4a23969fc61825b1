"""``credits-admin``: the operator's console command (also ``python -m devstack.admin``).

Against the emulators when ``FIRESTORE_EMULATOR_HOST`` is set (``make run`` prints it);
otherwise against production with Application Default Credentials
(``gcloud auth application-default login``) and ``--project`` / ``GOOGLE_CLOUD_PROJECT``.
In production every command that writes asks for confirmation unless ``--yes``.

Exit codes: 0 done, 1 drift found by ``reconcile``, 2 bad usage or a refused action.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

T = TypeVar("T")

PROFILES = ("kitesforu", "bigeye", "kaiwa")
MAX_BACKFILL_DAYS = 800


class AdminError(click.ClickException):
    """A refused or failed action: printed as ``error: ...``, exit code 2."""

    exit_code = 2

    def format_message(self) -> str:
        return self.message


class Env:
    """Where the command runs: project, profile, emulator or production."""

    def __init__(self, project: str | None, profile: str | None, yes: bool) -> None:
        from shared.settings import get_settings

        if project and project != get_settings().google_cloud_project:
            # A one-shot process: point the settings and clients at the named project.
            from shared.clients import reset_clients
            from shared.settings import reset_settings

            os.environ["GOOGLE_CLOUD_PROJECT"] = project
            reset_settings()
            reset_clients()
        settings = get_settings()
        self.project = settings.google_cloud_project
        self.profile = profile or settings.schema_profile
        #: False when neither --profile nor SCHEMA_PROFILE named the app (reconcile then
        #: covers every app whose ledger has transactions).
        self.profile_named = profile is not None
        self.emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
        self.yes = yes
        self._stack_checked = False

    def describe(self) -> str:
        where = f"emulator {self.emulator}" if self.emulator else "PRODUCTION"
        return f"{where}, project {self.project}, profile {self.profile}"

    def db(self) -> Any:
        from shared.clients import firestore_client

        self.require_stack()
        return call(firestore_client)

    def ledger(self) -> Any:
        from shared.ledger import ledger_for

        self.require_stack()
        return call(ledger_for, self.profile)

    def check_user(self, user_id: str) -> None:
        """Refuse a user whose document belongs to another app's profile, naming it."""
        from shared.ledger.ownership import owner_of_user

        ledger = self.ledger()
        snap = call(lambda: ledger.user_ref(user_id).get())
        owner = owner_of_user(snap.to_dict() or {}) if snap.exists else None
        if owner is not None and owner != self.profile:
            raise AdminError(
                f"user {user_id} belongs to the {owner} profile, not {self.profile}: "
                f"run with --profile {owner}"
            )

    def require_stack(self) -> None:
        """On the emulators, stop in seconds when the Firestore emulator does not answer
        (the client would retry silently for minutes)."""
        if not self.emulator or self._stack_checked:
            return
        from devstack.preflight import StackDown, require

        try:
            require(firestore=True)
        except StackDown as exc:
            raise AdminError(str(exc)) from None
        self._stack_checked = True

    def now(self) -> datetime:
        from shared.clock import get_clock

        return get_clock().now()

    def confirm_write(self, what: str) -> None:
        """In production, ask before writing (``--yes`` skips the question)."""
        if self.emulator or self.yes:
            return
        click.confirm(f"{what} on {self.describe()}?", abort=True, err=True)


def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service, turning its errors into clear CLI errors."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    from shared.errors import CreditsError

    try:
        return fn(*args, **kwargs)
    except CreditsError as exc:
        raise AdminError(f"{exc.detail} ({exc.code})") from None
    except auth_exc.DefaultCredentialsError:
        raise AdminError(
            "no Google credentials: set FIRESTORE_EMULATOR_HOST for the emulators, or run "
            "`gcloud auth application-default login` for production"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise AdminError(f"Firestore refused the request: {exc.message}") from None


def emit(data: Any, as_json: bool, lines: Callable[[], Iterator[str]]) -> None:
    if as_json:
        click.echo(json.dumps(data, default=str, ensure_ascii=False, indent=2))
    else:
        for line in lines():
            click.echo(line)


def emit_rows(
    rows: list[dict[str, Any]], as_json: bool, empty: str, line: Callable[[dict[str, Any]], str]
) -> None:
    """A list: JSON, or one line per row (``empty`` when there is none)."""
    emit(rows, as_json, lambda: iter([line(r) for r in rows] or [empty]))


def posting_view(result: Any, key: str) -> dict[str, Any]:
    return {
        "user_id": result.user_id,
        "transaction_id": result.transaction_id,
        "type": result.kind.value if result.kind else None,
        "amount": result.amount,
        "balance_after": result.balance_after,
        "shortfall": result.shortfall,
        "replayed": result.replayed,
        "key": key,
    }


def print_posting(view: dict[str, Any], as_json: bool) -> None:
    def lines() -> Iterator[str]:
        state = "already applied earlier (replay, nothing written)" if view["replayed"] else "done"
        yield f"{state}: {view['amount']:+d} credits to {view['user_id']}"
        yield f"balance after: {view['balance_after']}"
        yield f"transaction: {view['transaction_id']}"
        if view["shortfall"]:
            yield f"shortfall (could not take back): {view['shortfall']}"
        yield f"idempotency key: {view['key']}"

    emit(view, as_json, lines)


pass_env = click.make_pass_decorator(Env)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
actor_option = click.option(
    "--actor", required=True, help="Who does this (an operator id or e-mail), recorded."
)
reason_option = click.option("--reason", required=True, help="Why, recorded with the change.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", envvar="GOOGLE_CLOUD_PROJECT", help="Google Cloud project id.")
@click.option(
    "--profile",
    envvar="SCHEMA_PROFILE",
    type=click.Choice(PROFILES),
    help="Schema profile of the app (SCHEMA_PROFILE).",
)
@click.option("--yes", is_flag=True, help="Do not ask before writing to production.")
@click.pass_context
def cli(ctx: click.Context, project: str | None, profile: str | None, yes: bool) -> None:
    """Operate the credit ledger: balances, corrections, reconciliation, replays, rollups,
    engine costs and promotions.

    Uses the emulators when FIRESTORE_EMULATOR_HOST is set, otherwise production with
    Application Default Credentials.
    """
    ctx.obj = Env(project, profile, yes)


@cli.command()
@click.argument("user_id")
@json_option
@pass_env
def balance(env: Env, user_id: str, as_json: bool) -> None:
    """Show USER_ID's balance and counters."""
    env.check_user(user_id)
    ledger = env.ledger()
    snap = call(lambda: ledger.user_ref(user_id).get())
    if not snap.exists:
        raise AdminError(f"unknown user {user_id}")
    data = snap.to_dict() or {}
    p = ledger.profile
    view = {
        "user_id": user_id,
        "balance": int(data.get(p.balance_field) or 0),
        "total_credits_used": data.get(p.used_field),
        "profile": p.name,
    }
    if p.purchased_field:
        view["total_credits_purchased"] = data.get(p.purchased_field)
    emit(view, as_json, lambda: iter(f"{k}: {v}" for k, v in view.items()))


@cli.command()
@click.argument("user_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--tz",
    "tz_name",
    default="UTC",
    show_default=True,
    help="Time zone of the times shown, e.g. Asia/Bangkok (the BigEye API's).",
)
@json_option
@pass_env
def history(env: Env, user_id: str, limit: int, tz_name: str, as_json: bool) -> None:
    """Show USER_ID's latest transactions, newest first (times labelled with their zone)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from google.cloud import firestore

    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"{tz_name!r} is not a time zone", param_hint="--tz") from None

    env.check_user(user_id)
    ledger = env.ledger()
    query = (
        env.db()
        .collection(ledger.profile.transactions_collection)
        .where(filter=firestore.FieldFilter("user_id", "==", user_id))
        .order_by("created_at", direction=firestore.Query.DESCENDING)
        .limit(limit)
    )
    rows = [
        {"transaction_id": s.id, **(s.to_dict() or {})} for s in call(lambda: list(query.stream()))
    ]

    def lines() -> Iterator[str]:
        if not rows:
            yield f"no transactions for {user_id}"
        for r in rows:
            when = r.get("created_at")
            stamp = (
                f"{when.astimezone(zone):%Y-%m-%d %H:%M:%S} {tz_name}"
                if isinstance(when, datetime)
                else "?"
            )
            yield (
                f"{stamp}  {r.get('type', '?'):<18} {int(r.get('amount') or 0):>+9d}  "
                f"-> {int(r.get('balance_after') or 0):>9d}  {r['transaction_id']}  "
                f"{r.get('description', '')}"
            )

    emit(rows, as_json, lines)


def _ledger_action(
    env: Env,
    action: str,
    question: str,
    actor: str,
    reason: str,
    key: str | None,
    as_json: bool,
    *,
    user_id: str | None = None,
    transaction_id: str | None = None,
    amount: int | None = None,
) -> None:
    """grant / adjust / refund: the default key, the profile check, the question, the call."""
    from shared.admin import operations

    now = env.now()
    if key:
        key = call(operations.operator_key, key)
    else:
        # Grants and adjustments made again the same day replay; a refund is keyed by its
        # transaction alone, since refunding it twice is never meant.
        target = user_id if user_id is not None else transaction_id
        day = (now.date(),) if user_id is not None else ()
        key = operations.default_key(action, target, amount, actor, reason, *day)
    if user_id is not None:
        env.check_user(user_id)
    env.confirm_write(question)
    done = call(
        operations.ledger_action,
        env.ledger(),
        action,
        user_id=user_id,
        transaction_id=transaction_id,
        amount=amount,
        actor=actor,
        reason=reason,
        key=key,
        now=now,
    )
    print_posting(posting_view(done.result, done.key), as_json)


key_option = click.option(
    "--key",
    help="Idempotency key, without ':' or '%' (default: derived from the arguments, and "
    "today's date).",
)


@cli.command()
@click.argument("user_id")
@click.argument("amount", type=click.IntRange(min=1))
@actor_option
@reason_option
@key_option
@json_option
@pass_env
def grant(
    env: Env, user_id: str, amount: int, actor: str, reason: str, key: str | None, as_json: bool
) -> None:
    """Give AMOUNT bonus credits to USER_ID (audited).

    Running the same command again the same day replays it instead of granting twice;
    pass a distinct --key to grant the same amount twice on purpose.
    """
    what = f"Grant {amount} credits to {user_id}"
    _ledger_action(env, "grant", what, actor, reason, key, as_json, user_id=user_id, amount=amount)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("user_id")
@click.argument("amount", type=int)
@actor_option
@reason_option
@key_option
@json_option
@pass_env
def adjust(
    env: Env, user_id: str, amount: int, actor: str, reason: str, key: str | None, as_json: bool
) -> None:
    """Correct USER_ID's balance by AMOUNT (negative to remove; audited).

    A negative amount is written as is: credits-admin adjust u1 -50 --actor a --reason r
    """
    if amount == 0:
        raise AdminError("amount must not be zero")
    what = f"Adjust {user_id} by {amount:+d}"
    _ledger_action(env, "adjust", what, actor, reason, key, as_json, user_id=user_id, amount=amount)


@cli.command()
@click.argument("transaction_id")
@actor_option
@reason_option
@click.option("--amount", type=click.IntRange(min=1), help="Refund part (default: all left).")
@key_option
@json_option
@pass_env
def refund(
    env: Env,
    transaction_id: str,
    actor: str,
    reason: str,
    amount: int | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Refund TRANSACTION_ID (never more than the original in total; audited)."""
    what = f"Refund transaction {transaction_id}"
    _ledger_action(
        env,
        "refund",
        what,
        actor,
        reason,
        key,
        as_json,
        transaction_id=transaction_id,
        amount=amount,
    )


@cli.command()
@click.argument("user_ids", nargs=-1)
@click.option("--all", "all_users", is_flag=True, help="Every user (default without USER_IDS).")
@json_option
@pass_env
def reconcile(env: Env, user_ids: tuple[str, ...], all_users: bool, as_json: bool) -> None:
    """Prove balances from transactions; exit 1 when anything does not add up.

    Writes one ledger_reconciliations report; never changes a balance.
    """
    from dataclasses import asdict

    from shared.ledger.reconcile import reconcile as run

    if user_ids and all_users:
        raise AdminError("give USER_IDS or --all, not both")
    from shared.ledger.ownership import ledgers_present
    from shared.ledger.profiles import ledger_profile

    now = env.now()
    db = env.db()
    # Without a named profile, every app whose ledger has transactions is reconciled.
    profiles = (
        [ledger_profile(env.profile)]
        if env.profile_named
        else call(ledgers_present, db) or [ledger_profile(env.profile)]
    )
    reports = [
        call(
            run,
            db,
            profile,
            run_id=f"admin_{now.strftime('%Y%m%dT%H%M%S%f')}_{profile.name}",
            now=now,
            user_ids=list(user_ids) or None,
        )
        for profile in profiles
    ]
    views = [
        {
            "run_id": report.run_id,
            "profile": report.profile,
            "clean": report.clean,
            "users_checked": report.users_checked,
            "transactions_checked": report.transactions_checked,
            "discrepancies": [asdict(d) for d in report.discrepancies],
        }
        for report in reports
    ]

    def lines() -> Iterator[str]:
        for report in reports:
            yield (
                f"{'clean' if report.clean else 'DRIFT'} ({report.profile}): "
                f"{report.users_checked} users, {report.transactions_checked} transactions, "
                f"{len(report.discrepancies)} discrepancies (report {report.run_id})"
            )
            for d in report.discrepancies:
                yield f"  {d.user_id}: {d.problem}: {d.detail}"

    emit(views[0] if len(views) == 1 else views, as_json, lines)
    if not all(report.clean for report in reports):
        sys.exit(1)


@cli.group()
def stripe() -> None:
    """Stripe events that could not be attributed (parked) and their replay."""


def _parked_line(r: dict[str, Any]) -> str:
    return f"{r['event_id']}  {r.get('type', '?')}  {r.get('status', '?')}  {r.get('reason', '')}"


@stripe.command("parked")
@click.option("--all", "include_replayed", is_flag=True, help="Include replayed events.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@json_option
@pass_env
def stripe_parked(env: Env, include_replayed: bool, limit: int, as_json: bool) -> None:
    """List parked Stripe events, oldest first."""
    from shared.billing import list_parked_events

    rows = call(list_parked_events, env.db(), include_replayed=include_replayed, limit=limit)

    emit_rows(rows, as_json, "no parked events", _parked_line)


def _shortfall_line(r: dict[str, Any]) -> str:
    return (
        f"{r['event_id']}  {r.get('user_id', '?')}  {r.get('reason', '?')}  "
        f"asked {r.get('requested_credits')}  took {r.get('clawed_credits')}  "
        f"short {r.get('shortfall_credits')}  payment {r.get('payment_intent_id')}"
    )


@stripe.command("shortfalls")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@json_option
@pass_env
def stripe_shortfalls(env: Env, limit: int, as_json: bool) -> None:
    """Clawbacks (refunds, disputes) that could not take every credit back because the
    user had spent them, oldest first: what to recover by hand."""
    from shared.billing import list_shortfalls

    rows = call(list_shortfalls, env.db(), limit=limit)
    rows.sort(key=lambda r: (str(r.get("created_at")), r["event_id"]))
    emit_rows(rows, as_json, "no clawback shortfalls", _shortfall_line)


@stripe.command("replay")
@click.argument("event_ids", nargs=-1, required=True)
@actor_option
@reason_option
@json_option
@pass_env
def stripe_replay(
    env: Env, event_ids: tuple[str, ...], actor: str, reason: str, as_json: bool
) -> None:
    """Process parked EVENT_IDS again (after fixing the user link or price mapping); each
    replay that changes something is audited in admin_actions (stripe_replay)."""
    from shared.admin.operations import replay_parked

    env.confirm_write(f"Replay {len(event_ids)} parked Stripe event(s)")
    outcomes = [
        call(
            replay_parked,
            env.db(),
            event_id=event_id,
            actor=actor,
            reason=reason,
            now=env.now(),
            profile=env.profile,
        ).as_dict()
        for event_id in event_ids
    ]

    def lines() -> Iterator[str]:
        for o in outcomes:
            yield (
                f"{o['event_id']}: {o['status']}"
                + (f" ({o['credits']:+d} credits to {o['user_id']})" if o.get("credits") else "")
                + (f" {o['detail']}" if o.get("detail") else "")
            )

    emit(outcomes, as_json, lines)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@cli.command()
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "end", required=True, help="Last day, YYYY-MM-DD (UTC), inclusive.")
@click.option("--months", is_flag=True, help="Also rebuild the monthly/yearly/all-time rollups.")
@pass_env
def backfill(env: Env, start: str, end: str, months: bool) -> None:
    """Rebuild the daily rollups (profit aggregates, token history) over a date range.

    Reruns give identical results, so a backfill can be interrupted and run again.
    """
    from shared.analytics.jobs import daily_rollup, monthly_rollup
    from shared.clock import get_clock

    first, last = _day(start), _day(end)
    today = env.now().date()
    if last < first:
        raise AdminError("--to is before --from")
    if last >= today:
        raise AdminError(f"--to must be a day that has ended (before {today.isoformat()})")
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if len(days) > MAX_BACKFILL_DAYS:
        raise AdminError(f"at most {MAX_BACKFILL_DAYS} days per run")
    env.confirm_write(f"Rebuild {len(days)} daily rollups")
    db, clock = env.db(), get_clock()
    written = 0
    with click.progressbar(days, label="daily rollups", item_show_func=_show_day) as bar:
        for day in bar:
            report = call(daily_rollup, db, day, now=clock.now)
            written += len(getattr(report, "written", []) or [])
    month_keys = sorted({(d.year, d.month) for d in days})
    closed = [
        (y, m)
        for y, m in month_keys
        if (date(y, m, 1) + timedelta(days=32)).replace(day=1) <= today
    ]
    if months and closed:
        with click.progressbar(closed, label="monthly rollups") as bar:
            for year, month in bar:
                call(monthly_rollup, db, year, month, now=clock.now, as_of=today)
    click.echo(
        f"rebuilt {len(days)} days ({first.isoformat()}..{last.isoformat()})"
        + (f" and {len(closed)} months" if months else "")
    )


def _show_day(day: date | None) -> str:
    return day.isoformat() if day else ""


def _flat(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested maps as dotted keys (as the schema tables write them), in key order."""
    if isinstance(data, dict) and data:
        for key in sorted(data):
            yield from _flat(data[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def _shown(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, default=str, ensure_ascii=False)


@cli.command()
@click.argument("path")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
@pass_env
def show(env: Env, path: str, limit: int, as_json: bool) -> None:
    """Print a document (COLLECTION/ID) or a collection's first documents, readably.

    Examples: show ai_engine_costs, show users/demo_stripe_user,
    show system_config/app_settings --json.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        raise AdminError("name a collection or a document: COLLECTION or COLLECTION/ID")
    db = env.db()
    if len(parts) % 2 == 0:
        snap = call(lambda: db.document("/".join(parts)).get())
        if not snap.exists:
            raise AdminError(f"no document {'/'.join(parts)}")
        snaps = [snap]
    else:
        query = db.collection("/".join(parts)).limit(limit)
        snaps = call(lambda: list(query.stream()))
    rows = [{"path": s.reference.path, "data": s.to_dict() or {}} for s in snaps]

    def lines() -> Iterator[str]:
        if not rows:
            yield f"no documents in {'/'.join(parts)}"
        for row in rows:
            yield f"{row['path']}"
            for key, value in _flat(row["data"]):
                yield f"  {key}: {_shown(value)}"
        if len(parts) % 2 == 1 and len(rows) == limit:
            yield f"(first {limit}; --limit N for more)"

    emit(rows, as_json, lines)


@cli.command("engine-cost")
@click.argument("engine_id")
@click.argument("cost_per_unit")
@actor_option
@reason_option
@json_option
@pass_env
def engine_cost(
    env: Env, engine_id: str, cost_per_unit: str, actor: str, reason: str, as_json: bool
) -> None:
    """Set ENGINE_ID's cost_per_unit (USD per unit_type); profit_audit_log records it."""
    from shared.admin import operations

    cost: Decimal = call(operations.parse_cost, cost_per_unit)
    env.confirm_write(f"Set {engine_id} cost to {cost} USD per unit")
    doc = call(
        operations.set_engine_cost,
        env.db(),
        engine_id=engine_id,
        cost_per_unit=cost,
        actor=actor,
        reason=reason,
        now=env.now(),
    )
    emit(
        {"engine_id": engine_id, **doc},
        as_json,
        lambda: iter(
            [f"{engine_id}: {doc['cost_per_unit']} USD per {doc.get('unit_type', 'unit')}"]
        ),
    )


@cli.group()
def promotions() -> None:
    """BigEye promotions: list, create, pause."""


def _promotion_line(p: dict[str, Any]) -> str:
    stats = p.get("stats") or {}
    return (
        f"{p['promo_id']}  {p.get('status', '?'):<9} {p.get('type', '?'):<14} "
        f"priority {p.get('priority', 0)}  {p.get('name', '')}  "
        f"redemptions {stats.get('total_redemptions', 0)}"
    )


@promotions.command("list")
@click.option("--status", type=click.Choice(["DRAFT", "ACTIVE", "PAUSED", "EXPIRED", "CANCELLED"]))
@json_option
@pass_env
def promotions_list(env: Env, status: str | None, as_json: bool) -> None:
    """List promotions, highest priority first."""
    from shared.admin import operations

    rows = call(operations.list_promotions, env.db(), status)

    emit_rows(rows, as_json, "no promotions", _promotion_line)


def _instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from shared.clock import parse_instant

    try:
        return parse_instant(value)
    except ValueError:
        raise click.BadParameter(f"{name} {value!r} is not an ISO 8601 instant") from None


@promotions.command("create")
@click.argument("promo_id")
@click.option("--name", required=True)
@click.option(
    "--type",
    "type_",
    required=True,
    type=click.Choice(
        ["RATE_BOOST", "TIERED_BONUS", "FLAT_BONUS", "WELCOME_BONUS", "FIRST_TOPUP", "USAGE_REWARD"]
    ),
)
@click.option(
    "--status", default="DRAFT", show_default=True, type=click.Choice(["DRAFT", "ACTIVE"])
)
@click.option("--priority", default=0, show_default=True, type=int)
@click.option("--start", help="conditions.start_date (ISO 8601, UTC).")
@click.option("--end", help="conditions.end_date (ISO 8601, UTC).")
@click.option("--code", help="Promo code (sets conditions.require_code).")
@click.option("--min-baht", type=click.IntRange(min=0))
@click.option("--max-baht", type=click.IntRange(min=0))
@click.option("--max-redemptions", type=click.IntRange(min=1))
@click.option("--max-per-user", type=click.IntRange(min=1))
@click.option("--new-users-only", is_flag=True)
@click.option("--first-topup-only", is_flag=True)
@click.option("--bonus-credits", type=click.IntRange(min=1), help="reward BONUS_CREDITS.")
@click.option(
    "--bonus-percentage", type=click.FloatRange(min=0, max=1000), help="PERCENTAGE_BONUS."
)
@click.option("--override-rate", type=click.FloatRange(min=0), help="RATE_OVERRIDE.")
@click.option("--tiers", help="TIERED_BONUS tiers: 100-299:400,300-499:1300,500-:2200")
@click.option("--banner-text", default="", help="display.banner_text")
@click.option("--banner-color", default="#FF4560", show_default=True)
@actor_option
@json_option
@pass_env
def promotions_create(
    env: Env, promo_id: str, type_: str, actor: str, as_json: bool, **o: Any
) -> None:
    """Create promotion PROMO_ID (DRAFT unless --status ACTIVE)."""
    from shared.admin import operations
    from shared.admin.promotion_form import parse_tiers, promotion_document

    document = call(
        promotion_document,
        name=o["name"],
        type_=type_,
        status=o["status"],
        priority=o["priority"],
        start=_instant(o["start"], "--start"),
        end=_instant(o["end"], "--end"),
        code=o["code"],
        min_baht=o["min_baht"],
        max_baht=o["max_baht"],
        max_redemptions=o["max_redemptions"],
        max_per_user=o["max_per_user"],
        new_users_only=o["new_users_only"],
        first_topup_only=o["first_topup_only"],
        bonus_credits=o["bonus_credits"],
        bonus_percentage=o["bonus_percentage"],
        override_rate=o["override_rate"],
        tiers=call(parse_tiers, o["tiers"]),
        banner_text=o["banner_text"],
        banner_color=o["banner_color"],
    )
    env.confirm_write(f"Create promotion {promo_id} ({o['status']})")
    doc = call(
        operations.create_promotion,
        env.db(),
        promo_id=promo_id,
        document=document,
        actor=actor,
        now=env.now(),
    )
    emit(
        {"promo_id": promo_id, **doc},
        as_json,
        lambda: iter([f"created {promo_id} ({doc['status']})"]),
    )


def _target_command(
    group: click.Group,
    name: str,
    metavar: str,
    doc: str,
    act: Callable[[Env, str, str, str], tuple[dict[str, Any], str]],
) -> None:
    """``GROUP NAME TARGET --actor --reason [--json]``: one audited change of one document;
    ``act`` asks, does it, and returns the view and the line to print."""

    @group.command(name, help=doc)
    @click.argument("target", metavar=metavar)
    @actor_option
    @reason_option
    @json_option
    @pass_env
    def command(env: Env, target: str, actor: str, reason: str, as_json: bool) -> None:
        view, line = act(env, target, actor, reason)
        emit(view, as_json, lambda: iter([line]))


def _promotion_act(name: str, action: str) -> Callable[..., tuple[dict[str, Any], str]]:
    def act(env: Env, promo_id: str, actor: str, reason: str) -> tuple[dict[str, Any], str]:
        from shared.admin.operations import promotion_transition

        env.confirm_write(f"{name.capitalize()} promotion {promo_id}")
        now = env.now()
        doc = call(
            promotion_transition,
            env.db(),
            action,
            promo_id=promo_id,
            actor=actor,
            reason=reason,
            now=now,
        )
        return {"promo_id": promo_id, **doc}, f"{promo_id} is {doc['status']}"

    return act


for _name, _doc in (
    ("pause", "Pause PROMO_ID (no new redemptions; existing ones stand)."),
    ("resume", "Resume a PAUSED PROMO_ID (refused once its end date has passed)."),
    ("cancel", "Cancel PROMO_ID for good (DRAFT, ACTIVE or PAUSED; redemptions made stand)."),
):
    _target_command(
        promotions, _name, "PROMO_ID", _doc, _promotion_act(_name, f"promotion_{_name}")
    )


@promotions.command("expire")
@json_option
@pass_env
def promotions_expire(env: Env, as_json: bool) -> None:
    """Mark promotions past their end date EXPIRED now (what cron-expire-promotions does)."""
    from shared.admin.operations import expire_promotions

    env.confirm_write("Expire promotions past their end date")
    expired = call(expire_promotions, env.db(), env.now())
    emit(expired, as_json, lambda: iter([f"expired: {', '.join(expired) or 'none'}"]))


@cli.group()
def accounts() -> None:
    """BigEye accounts: suspend, ban, unban, rebind to another device (audited)."""


def _status_act(status: str) -> Callable[..., tuple[dict[str, Any], str]]:
    def act(env: Env, user_id: str, actor: str, reason: str) -> tuple[dict[str, Any], str]:
        from shared.admin.accounts import set_user_status

        env.confirm_write(f"Set {user_id} {status}")
        now = env.now()
        view = call(
            set_user_status,
            env.db(),
            user_id=user_id,
            status=status,
            actor=actor,
            reason=reason,
            now=now,
        )
        return view, f"{user_id} is {'now' if view['changed'] else 'already'} {status}"

    return act


for _name, _status, _doc in (
    ("suspend", "suspended", "Suspend USER_ID: every API call and login is refused (403)."),
    ("ban", "banned", "Ban USER_ID: every API call and login is refused (403)."),
    ("unban", "active", "Make a suspended or banned USER_ID active again."),
):
    _target_command(accounts, _name, "USER_ID", _doc, _status_act(_status))


@accounts.command("rebind")
@click.argument("user_id")
@click.argument("hardware_id")
@actor_option
@reason_option
@json_option
@pass_env
def accounts_rebind(
    env: Env, user_id: str, hardware_id: str, actor: str, reason: str, as_json: bool
) -> None:
    """Bind USER_ID to HARDWARE_ID; the old device's tokens stop working at once."""
    from shared.admin.accounts import rebind_device

    env.confirm_write(f"Rebind {user_id} to device {hardware_id}")
    view = call(
        rebind_device,
        env.db(),
        user_id=user_id,
        hardware_id=hardware_id,
        actor=actor,
        reason=reason,
        now=env.now(),
    )
    emit(view, as_json, lambda: iter([f"{user_id} is bound to {hardware_id}"]))


@cli.group("app-settings")
def app_settings() -> None:
    """BigEye's system_config/app_settings: show, and set fields (validated, audited)."""


@app_settings.command("show")
@json_option
@pass_env
def app_settings_show(env: Env, as_json: bool) -> None:
    """Show the editable fields."""
    from shared.admin.accounts import show_app_settings

    view = call(show_app_settings, env.db())
    emit(view, as_json, lambda: iter(f"{k}: {v}" for k, v in view.items()))


@app_settings.command("set")
@click.argument("assignments", nargs=-1, required=True, metavar="FIELD=VALUE...")
@click.option(
    "--from-file",
    "files",
    multiple=True,
    metavar="FIELD=PATH",
    help="Set a long text field (prompts.istock, dictionary, ...) from a UTF-8 file.",
)
@actor_option
@reason_option
@json_option
@pass_env
def app_settings_set(
    env: Env,
    assignments: tuple[str, ...],
    files: tuple[str, ...],
    actor: str,
    reason: str,
    as_json: bool,
) -> None:
    """Set fields, e.g. maintenance_mode=true 'maintenance_message=Back at 10:00'
    credit_rates.istock_photo=3 exchange_rate=4.5 force_update_below=null.

    blacklist takes comma-separated words. Fields: `credits-admin app-settings show`.
    """
    from pathlib import Path

    from shared.admin.accounts import update_app_settings

    changes: dict[str, Any] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep:
            raise AdminError(f"{item!r} is not FIELD=VALUE")
        changes[name.strip()] = value
    for item in files:
        name, sep, path = item.partition("=")
        if not sep:
            raise AdminError(f"{item!r} is not FIELD=PATH")
        try:
            changes[name.strip()] = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise AdminError(f"cannot read {path}: {exc.strerror}") from None
    env.confirm_write(f"Change app settings {', '.join(changes)}")
    result = call(
        update_app_settings, env.db(), changes=changes, actor=actor, reason=reason, now=env.now()
    )

    def lines() -> Iterator[str]:
        if not result["changed"]:
            yield "nothing changed (every field already had that value)"
        for name, (before, after) in result["changed"].items():
            yield f"{name}: {before!r} -> {after!r}"

    emit(result, as_json, lines)


@cli.group()
def maintenance() -> None:
    """BigEye maintenance mode (app settings, audited): every credit-api route answers 503
    with the message, except check-update (how the app learns of it) and job finalize."""


def _maintenance(env: Env, changes: dict[str, Any], actor: str, reason: str, as_json: bool) -> None:
    from shared.admin.accounts import update_app_settings

    env.confirm_write(f"Set maintenance {'on' if changes['maintenance_mode'] else 'off'}")
    result = call(
        update_app_settings, env.db(), changes=changes, actor=actor, reason=reason, now=env.now()
    )
    state = "on" if changes["maintenance_mode"] else "off"
    done = "now" if result["changed"] else "already"
    emit(result, as_json, lambda: iter([f"maintenance is {done} {state}"]))


@maintenance.command("on")
@click.option("--message", help="maintenance_message shown to the app (kept if omitted).")
@actor_option
@reason_option
@json_option
@pass_env
def maintenance_on(env: Env, message: str | None, actor: str, reason: str, as_json: bool) -> None:
    """Turn maintenance mode on."""
    changes: dict[str, Any] = {"maintenance_mode": True}
    if message is not None:
        changes["maintenance_message"] = message
    _maintenance(env, changes, actor, reason, as_json)


@maintenance.command("off")
@actor_option
@reason_option
@json_option
@pass_env
def maintenance_off(env: Env, actor: str, reason: str, as_json: bool) -> None:
    """Turn maintenance mode off."""
    _maintenance(env, {"maintenance_mode": False}, actor, reason, as_json)


@cli.group()
def loss() -> None:
    """Loss users (30-day profit below zero): list, and the action taken (audited)."""


def _loss_line(r: dict[str, Any]) -> str:
    return (
        f"{r['user_id']}  profit {r.get('total_profit_usd')} USD  "
        f"margin {r.get('profit_margin_percent')}%  {r.get('days_in_loss')} days  "
        f"action {r.get('action_taken') or '-'}"
    )


@loss.command("list")
@json_option
@pass_env
def loss_list(env: Env, as_json: bool) -> None:
    """Users in loss now, most negative profit first."""
    from shared.admin.accounts import list_loss_users

    rows = call(list_loss_users, env.db())

    emit_rows(rows, as_json, "no users in loss", _loss_line)


@loss.command("action")
@click.argument("user_id")
@click.argument(
    "action", type=click.Choice(["monitored", "rate_limited", "plan_upgraded", "clear"])
)
@actor_option
@reason_option
@json_option
@pass_env
def loss_action(
    env: Env, user_id: str, action: str, actor: str, reason: str, as_json: bool
) -> None:
    """Record ACTION for loss user USER_ID (rate_limited lowers their daily token limit
    until cleared)."""
    from shared.admin.accounts import set_loss_action

    env.confirm_write(f"Set action {action} on loss user {user_id}")
    view = call(
        set_loss_action,
        env.db(),
        user_id=user_id,
        action=None if action == "clear" else action,
        actor=actor,
        reason=reason,
        now=env.now(),
    )
    emit(view, as_json, lambda: iter([f"{user_id}: action_taken {view['action_taken']}"]))


@cli.group()
def router() -> None:
    """Model router: acknowledge alerts, show and set pipeline_config flags (audited)."""


def _alert_line(r: dict[str, Any]) -> str:
    return (
        f"{r['alert_id']}  {r.get('severity', '?'):<9} {r.get('type', '?')}  "
        f"{r.get('provider', '')}  ack={r.get('acknowledged')}  {r.get('message', '')}"
    )


@router.command("alerts")
@click.option("--all", "include_acknowledged", is_flag=True, help="Include acknowledged.")
@json_option
@pass_env
def router_alerts(env: Env, include_acknowledged: bool, as_json: bool) -> None:
    """Router alerts not yet acknowledged, newest first."""
    from shared.admin.router import list_alerts

    rows = call(list_alerts, env.db(), include_acknowledged=include_acknowledged)

    emit_rows(rows, as_json, "no open router alerts", _alert_line)


@router.command("ack")
@click.argument("alert_id")
@actor_option
@reason_option
@json_option
@pass_env
def router_ack(env: Env, alert_id: str, actor: str, reason: str, as_json: bool) -> None:
    """Acknowledge router alert ALERT_ID."""
    from shared.admin.router import acknowledge_alert

    env.confirm_write(f"Acknowledge router alert {alert_id}")
    view = call(
        acknowledge_alert, env.db(), alert_id=alert_id, actor=actor, reason=reason, now=env.now()
    )
    state = "acknowledged" if view["changed"] else "already acknowledged"
    emit(view, as_json, lambda: iter([f"{alert_id} {state}"]))


@router.command("flags")
@json_option
@pass_env
def router_flags(env: Env, as_json: bool) -> None:
    """The pipeline_config flags in force."""
    from shared.admin.router import show_pipeline_flags

    flags = call(show_pipeline_flags, env.db())
    emit(flags, as_json, lambda: iter(f"{k}: {v}" for k, v in flags.items()))


@router.command("set-flag")
@click.argument("flag")
@click.argument("value", type=click.Choice(["true", "false"]))
@actor_option
@reason_option
@json_option
@pass_env
def router_set_flag(
    env: Env, flag: str, value: str, actor: str, reason: str, as_json: bool
) -> None:
    """Set pipeline_config FLAG to VALUE (e.g. planner_enabled true)."""
    from shared.admin.router import set_pipeline_flag

    env.confirm_write(f"Set pipeline_config {flag}={value}")
    view = call(
        set_pipeline_flag,
        env.db(),
        flag=flag,
        value=value == "true",
        actor=actor,
        reason=reason,
        now=env.now(),
    )
    emit(view, as_json, lambda: iter([f"{flag}: {view['value']}"]))


@cli.group()
def slips() -> None:
    """BigEye slips: list, re-verify PENDING ones, approve or reject after review."""


def _slip_line(r: dict[str, Any]) -> str:
    when = r.get("created_at")
    stamp = when.strftime("%Y-%m-%d %H:%M") if isinstance(when, datetime) else "?"
    return (
        f"{r['slip_id']}  {stamp}  {r.get('status', '?'):<9} {r.get('user_id', '?')}  "
        f"ref={r.get('bank_ref')}  detected={r.get('amount_detected')}  "
        f"{r.get('reject_reason') or ''}"
    )


@slips.command("list")
@click.option(
    "--status",
    default="PENDING",
    show_default=True,
    type=click.Choice(["PENDING", "REJECTED", "VERIFIED", "DUPLICATE"]),
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
@pass_env
def slips_list(env: Env, status: str, limit: int, as_json: bool) -> None:
    """List slips with STATUS, oldest first (image_url is the stored image)."""
    from shared.admin.operations import list_slips

    rows = call(list_slips, env.db(), status=status, limit=limit)
    emit_rows(rows, as_json, f"no {status} slips", _slip_line)


@slips.command("reverify")
@json_option
@pass_env
def slips_reverify(env: Env, as_json: bool) -> None:
    """Send PENDING slips to Slip2Go again now (what cron-reverify-slips does)."""
    from shared.bigeye.topup import reverify_pending

    env.confirm_write("Re-verify PENDING slips")
    report = call(reverify_pending, env.db(), env.now()).as_dict()
    emit(report, as_json, lambda: iter(f"{k}: {v}" for k, v in report.items()))


@slips.command("approve")
@click.argument("slip_id")
@actor_option
@reason_option
@click.option("--bank-ref", help="The slip's bank reference (when Slip2Go never read it).")
@click.option("--amount", type=float, help="Baht to credit (default: the amount submitted).")
@json_option
@pass_env
def slips_approve(
    env: Env,
    slip_id: str,
    actor: str,
    reason: str,
    bank_ref: str | None,
    amount: float | None,
    as_json: bool,
) -> None:
    """Credit SLIP_ID after review (MANUAL; once per bank reference; audited)."""
    from shared.bigeye.topup import approve_slip

    env.confirm_write(f"Approve slip {slip_id}")
    body = call(
        approve_slip,
        env.db(),
        slip_id=slip_id,
        actor=actor,
        reason=reason,
        bank_ref=bank_ref,
        amount=amount,
        now=env.now(),
    )
    emit(
        body,
        as_json,
        lambda: iter(
            [
                f"approved: {body['added']:+d} credits, balance {body['credits']}",
                f"transaction: {body['transaction_id']}",
            ]
        ),
    )


@slips.command("reject")
@click.argument("slip_id")
@actor_option
@reason_option
@json_option
@pass_env
def slips_reject(env: Env, slip_id: str, actor: str, reason: str, as_json: bool) -> None:
    """Reject PENDING SLIP_ID with a reason (audited)."""
    from shared.bigeye.topup import reject_slip

    env.confirm_write(f"Reject slip {slip_id}")
    doc = call(reject_slip, env.db(), slip_id=slip_id, actor=actor, reason=reason, now=env.now())
    emit(
        {"slip_id": slip_id, **doc},
        as_json,
        lambda: iter([f"{slip_id} is {doc['status']}: {doc.get('reject_reason')}"]),
    )


def main() -> None:
    """Console entry point."""
    cli(prog_name="credits-admin")


if __name__ == "__main__":
    main()


__all__ = ["cli", "main"]
