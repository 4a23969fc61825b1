"""``python -m devstack run``: the whole suite on the local emulators, in the foreground."""

from __future__ import annotations

import signal
import threading
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
def run(no_seed: bool, no_scheduler: bool) -> None:
    """Start emulators, functions, triggers, scheduler and demo data; Ctrl-C stops all."""
    try:
        config = StackConfig.from_env()
    except StackError as exc:
        raise click.ClickException(str(exc)) from None
    config.seed_demo = not no_seed
    config.scheduler = not no_scheduler
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
        click.echo(f"Firestore emulator   {stack.firestore_host}")
        click.echo(f"Pub/Sub emulator     {stack.pubsub_host}")
        click.echo(f"Storage emulator     {stack.storage_host}")
        click.echo(f"functions            {stack.base_url}/<function-name>")
        for spec in config.specs:
            where = getattr(spec.trigger, "topic", "") or getattr(spec.trigger, "pattern", "")
            kind = type(spec.trigger).__name__.lower()
            click.echo(f"  {spec.name:<28} {kind:<9} {where}")
        click.echo(f"health               {stack.base_url}/healthz")
        click.echo("ready; Ctrl-C to stop")
        while not stop.wait(0.5):
            pass
    finally:
        click.echo("stopping ...")
        stack.stop()
        click.echo("stopped")


def main() -> None:
    cli(prog_name="python -m devstack")


if __name__ == "__main__":
    main()
