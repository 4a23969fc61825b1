"""``Stack.stop`` under Ctrl-C: every part is stopped, then the interrupt is raised.

The emulators run in their own sessions (the terminal's Ctrl-C never reaches them), so a
stop cut short by a second, impatient Ctrl-C would leave them running on their ports. No
process is started here: the parts are stand-ins that record their stop.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from devstack.stack import Stack, StackConfig


class Part:
    """A stand-in for a part of the stack; ``send`` signals this process while stopping."""

    def __init__(self, name: str, stopped: list[str], send: tuple[int, ...] = ()) -> None:
        self.name, self.stopped, self.send = name, stopped, send

    def stop(self) -> None:
        for signum in self.send:
            os.kill(os.getpid(), signum)
        self.stopped.append(self.name)


def _stack(tmp_path: Path, stopped: list[str], first: tuple[int, ...]) -> Stack:
    stack = Stack(StackConfig(log_dir=tmp_path))
    # The scheduler stops first; its stop is interrupted (twice: an impatient user).
    stack.scheduler = Part("scheduler", stopped, first)
    stack.services = [Part("slip2go", stopped)]
    stack.firestore = Part("firestore", stopped, (signal.SIGINT,))  # type: ignore[assignment]
    stack.pubsub = Part("pubsub", stopped)  # type: ignore[assignment]
    stack.storage = Part("storage", stopped)  # type: ignore[assignment]
    return stack


ALL = ["firestore", "pubsub", "scheduler", "slip2go", "storage"]


def test_ctrl_c_during_the_stop_is_raised_once_every_part_is_down(tmp_path: Path) -> None:
    stopped: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    stack = _stack(tmp_path, stopped, (signal.SIGINT, signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        stack.stop()
    assert sorted(stopped) == ALL
    assert signal.getsignal(signal.SIGINT) == before
    stack.stop()  # once: a second stop does nothing
    assert sorted(stopped) == ALL


def test_a_kill_during_the_stop_exits_once_every_part_is_down(tmp_path: Path) -> None:
    stopped: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    stack = _stack(tmp_path, stopped, (signal.SIGTERM,))
    with pytest.raises(SystemExit):
        stack.stop()
    assert sorted(stopped) == ALL
    assert signal.getsignal(signal.SIGTERM) == before


def test_an_uninterrupted_stop_raises_nothing(tmp_path: Path) -> None:
    stopped: list[str] = []
    stack = _stack(tmp_path, stopped, ())
    stack.firestore = Part("firestore", stopped)  # type: ignore[assignment]
    stack.stop()
    assert sorted(stopped) == ALL
