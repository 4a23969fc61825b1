"""Fail fast when the local stack is not there: one line saying what to start.

The Google clients retry an unreachable emulator for minutes, silently; every local tool
(``credits-admin`` on the emulators, the senders, ``python -m devstack trigger``) therefore
asks the emulators and the functions server first, each with a short timeout, and stops with
one ``error: ...`` line naming what does not answer and what to run.
"""

from __future__ import annotations

import os
import sys

import httpx

DEFAULT_FIRESTORE = "127.0.0.1:8080"
DEFAULT_PUBSUB = "127.0.0.1:8085"
DEFAULT_FUNCTIONS_PORT = "8000"
#: Per probe; an emulator that is up answers in milliseconds.
TIMEOUT_S = 2.0
START_HINT = (
    "start the local stack with `make run` (in another terminal) and wait for its 'ready' line"
)


class StackDown(RuntimeError):
    """The part of the local stack a tool needs does not answer (a one-line message)."""


def local_env() -> None:
    """Point the Google clients at the default local stack where nothing else is set."""
    os.environ.setdefault("FIRESTORE_EMULATOR_HOST", DEFAULT_FIRESTORE)
    os.environ.setdefault("PUBSUB_EMULATOR_HOST", DEFAULT_PUBSUB)
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "demo-credits")


def functions_url() -> str:
    """The local functions server (``FUNCTIONS_PORT``)."""
    return f"http://127.0.0.1:{os.environ.get('FUNCTIONS_PORT', DEFAULT_FUNCTIONS_PORT)}"


def _emulator_problem(name: str, variable: str, default: str) -> str | None:
    host = os.environ.get(variable) or default
    try:
        response = httpx.get(f"http://{host}/", timeout=TIMEOUT_S)
    except httpx.HTTPError:
        return f"the {name} emulator does not answer at {host} ({variable})"
    if response.status_code != 200:
        return f"{host} ({variable}) answers HTTP {response.status_code}, not the {name} emulator"
    return None


def _functions_problem() -> str | None:
    base = functions_url()
    try:
        response = httpx.get(f"{base}/healthz", timeout=TIMEOUT_S)
    except httpx.HTTPError:
        return f"the functions server does not answer at {base} (FUNCTIONS_PORT)"
    if response.status_code == 503:
        return f"the functions server at {base} is still starting (healthz 503)"
    if response.status_code != 200:
        return f"{base}/healthz answers HTTP {response.status_code}, not the functions server"
    return None


def problems(
    *, firestore: bool = False, pubsub: bool = False, functions: bool = False
) -> list[str]:
    """What of the asked-for parts does not answer (empty: all up)."""
    found: list[str] = []
    if firestore and (
        p := _emulator_problem("Firestore", "FIRESTORE_EMULATOR_HOST", DEFAULT_FIRESTORE)
    ):
        found.append(p)
    if pubsub and (p := _emulator_problem("Pub/Sub", "PUBSUB_EMULATOR_HOST", DEFAULT_PUBSUB)):
        found.append(p)
    if functions and (p := _functions_problem()):
        found.append(p)
    return found


def require(*, firestore: bool = False, pubsub: bool = False, functions: bool = False) -> None:
    """StackDown with one line when a needed part of the local stack does not answer."""
    found = problems(firestore=firestore, pubsub=pubsub, functions=functions)
    if found:
        raise StackDown(f"{'; '.join(found)}: {START_HINT}")


def require_or_exit(
    *, firestore: bool = False, pubsub: bool = False, functions: bool = False
) -> None:
    """``require`` for plain command lines: prints ``error: ...`` on stderr and exits 2."""
    try:
        require(firestore=firestore, pubsub=pubsub, functions=functions)
    except StackDown as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
