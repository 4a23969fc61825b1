"""``python -m devstack run``: the whole suite on the local emulators, in the foreground."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from devstack.emulators import StackError
from devstack.stack import Stack, StackConfig


@click.group()
def cli() -> None:
    """Local stack of the credit functions."""


@cli.command()
@click.option("--no-seed", is_flag=True, help="Do not write the demo configuration.")
@click.option("--no-scheduler", is_flag=True, help="Do not publish the cron topics.")
@click.option(
    "--import",
    "import_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Start Firestore with the data exported in this directory (no demo rewrite).",
)
@click.option(
    "--export-on-exit",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Export Firestore into this directory when stopping (replacing its export).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep data between runs: --import DIR when it holds an export, --export-on-exit DIR.",
)
def run(
    no_seed: bool,
    no_scheduler: bool,
    import_dir: Path | None,
    export_dir: Path | None,
    data_dir: Path | None,
) -> None:
    """Start emulators, functions, triggers, scheduler and demo data; Ctrl-C stops all."""
    from devstack.emulators import find_export

    try:
        config = StackConfig.from_env()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    config.seed_demo = not no_seed
    config.scheduler = not no_scheduler
    if data_dir is not None:
        export_dir = export_dir or data_dir
        if import_dir is None and find_export(data_dir) is not None:
            import_dir = data_dir
    config.import_dir = import_dir
    config.export_dir = export_dir
    stack = Stack(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        click.echo("starting emulators and functions ...")
        stack.start()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if stack.imported is not None:
            click.echo(f"data imported from   {stack.config.import_dir}")
        click.echo(f"Firestore emulator   {stack.firestore_host}")
        click.echo(f"Pub/Sub emulator     {stack.pubsub_host}")
        click.echo(f"Storage emulator     {stack.storage_host}")
        click.echo(f"functions            {stack.base_url}/<function-name>")
        for spec in config.specs:
            where = getattr(spec.trigger, "topic", "") or getattr(spec.trigger, "pattern", "")
            kind = type(spec.trigger).__name__.lower()
            click.echo(f"  {spec.name:<28} {kind:<9} {where}")
        click.echo(f"health               {stack.base_url}/healthz")
        click.echo(what_you_can_do_now(stack))
        click.echo("ready; Ctrl-C to stop")
        while not stop.wait(0.5):
            pass
    finally:
        click.echo("stopping ..." + (" (exporting the data first)" if config.export_dir else ""))
        stack.stop()
        if stack.exported is not None:
            click.echo(f"data exported to     {stack.exported}")
        if stack.export_error:
            click.echo(f"error: the data was not exported: {stack.export_error}", err=True)
        click.echo("stopped")


def _local(**parts: bool) -> None:
    """Point at the local stack and stop with one line when a needed part is down."""
    from devstack.preflight import StackDown, local_env, require

    local_env()
    try:
        require(**parts)
    except StackDown as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.argument("schedule")
@click.option("--date", "day", help="The day to run for, YYYY-MM-DD (UTC); today is allowed.")
@click.option("--month", help="The month to run for, YYYY-MM; this month is allowed.")
@click.option("--data", help='The raw JSON message instead (e.g. \'{"user_ids": ["u1"]}\').')
@click.option("--no-wait", is_flag=True, help="Publish and return without waiting.")
def trigger(
    schedule: str, day: str | None, month: str | None, data: str | None, no_wait: bool
) -> None:
    """Run SCHEDULE (e.g. cron-daily-rollup) now on the running stack.

    Without a period the function computes the period that just ended, as on its cron.
    """
    from devstack import trigger as t

    try:
        message, partial = t.build_message(schedule, day=day, month=month, data=data)
    except t.TriggerError as exc:
        raise click.UsageError(str(exc)) from None
    _local(pubsub=True, functions=True)
    message_id = t.publish(t.schedules()[schedule].topic or schedule, message)
    click.echo(f"published {json.dumps(message)} to {schedule} (message {message_id})")
    if partial:
        click.echo(f"partial: {partial}")
    if no_wait:
        return
    found = t.wait_outcome(message_id)
    if found is None:
        raise click.ClickException(
            f"no outcome reported for message {message_id} within {t.WAIT_S:.0f} s: see the "
            "`make run` terminal (outcomes are logged at INFO: is LOG_LEVEL above INFO?)"
        )
    fields = {k: v for k, v in (found.get("fields") or {}).items() if k != "event_id"}
    detail = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
    if found["outcome"] != "done":
        raise click.ClickException(f"{found['outcome']}: {found['reason']}")
    click.echo(f"done: {found['message']}  {detail}".rstrip())


@cli.command()
@click.option(
    "--keep-data",
    is_flag=True,
    help="Only rewrite the demo documents; keep every other document.",
)
def reset(keep_data: bool) -> None:
    """Restore the demo data on the running stack, without a restart.

    Deletes every Firestore document, then writes the demo data again (as `make run` does at
    start). Rules and triggers stay as they are.
    """
    import httpx

    from devstack.demo import seed_all
    from shared.clients import firestore_client
    from shared.clock import get_clock
    from shared.settings import get_settings

    _local(firestore=True)
    host = os.environ["FIRESTORE_EMULATOR_HOST"]
    project = get_settings().google_cloud_project
    if not keep_data:
        url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
        httpx.delete(url, timeout=60).raise_for_status()
        click.echo(f"deleted every document of {project} on {host}")
    seed_all(firestore_client(), get_clock().now())
    click.echo("demo data written")


def what_you_can_do_now(stack: Stack) -> str:
    """The block printed once the stack is healthy: URLs, senders, data, logs."""
    from shared.registry import Http

    base = stack.base_url
    env = (
        f"FIRESTORE_EMULATOR_HOST={stack.firestore_host} "
        f"PUBSUB_EMULATOR_HOST={stack.pubsub_host} GOOGLE_CLOUD_PROJECT={stack.config.project}"
    )
    http = [s.name for s in stack.config.specs if isinstance(s.trigger, Http)]
    lines = ["", "What you can do now (in another terminal; docs/local-stack.md):"]
    lines.append("  HTTP functions:")
    lines += [f"    {base}/{name}/" for name in http]
    if "admin-console" in http:
        lines.append(
            f"  operator console:    {base}/admin-console/  (dev sign-in, docs/console.md)"
        )
    lines += [
        "  send events:",
        "    .venv/bin/python -m devstack.usage_send        # a usage event, and what it became",
        "    .venv/bin/python -m devstack.stripe_send checkout --user demo_stripe_user"
        " --price price_credits_500",
        "    .venv/bin/python -m devstack.provider_send     # a model-provider call",
        "    .venv/bin/python -m devstack trigger cron-daily-rollup [--date YYYY-MM-DD]",
        "  see the data:",
        f"    export {env}",
        "    .venv/bin/credits-admin balance demo_stripe_user",
        "    .venv/bin/credits-admin show ai_engine_costs   # any collection or document",
        "  restore the demo data:  .venv/bin/python -m devstack reset",
        "  logs: this terminal, one line per request or event; the emulators': "
        f"{stack.config.log_dir}/",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    cli(prog_name="python -m devstack")


if __name__ == "__main__":
    main()
