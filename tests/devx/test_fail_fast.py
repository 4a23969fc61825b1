"""With the stack down, every local tool stops within seconds with one line saying what to start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.emulators import free_port

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
#: Generous for a loaded 2-core machine (the import alone takes ~1 s); the clients, left
#: alone, retry an absent emulator silently for minutes.
LIMIT_S = 20.0

TOOLS = {
    "credits-admin balance": [PY, "-m", "devstack.admin", "balance", "demo_stripe_user"],
    "credits-admin history": [PY, "-m", "devstack.admin", "history", "demo_stripe_user"],
    "credits-admin reconcile": [PY, "-m", "devstack.admin", "reconcile"],
    "usage_send": [PY, "-m", "devstack.usage_send"],
    "stripe_send": [PY, "-m", "devstack.stripe_send", "checkout"],
}


@pytest.fixture(scope="module")
def down_env() -> dict[str, str]:
    """Ports nobody listens on."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env.update(
        FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{free_port()}",
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}",
        FUNCTIONS_PORT=str(free_port()),
        GOOGLE_CLOUD_PROJECT="demo-credits",
    )
    return env


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_tool_fails_fast_with_one_line(tool: str, down_env: dict[str, str]) -> None:
    started = time.monotonic()
    done = subprocess.run(
        TOOLS[tool], cwd=ROOT, env=down_env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert elapsed < LIMIT_S, elapsed
    assert len(lines) == 1, lines
    assert "make run" in lines[0] and "does not answer" in lines[0], lines[0]
    assert "Traceback" not in done.stderr and done.stdout.strip() == ""


def test_make_run_reports_every_busy_port_at_once() -> None:
    import socket

    taken = []
    try:
        for _ in range(3):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            taken.append(sock)
        fs, ps, fn = (s.getsockname()[1] for s in taken)
        env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
        env.update(
            FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{fs}",
            PUBSUB_EMULATOR_HOST=f"127.0.0.1:{ps}",
            FUNCTIONS_PORT=str(fn),
            STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}",
        )
        done = subprocess.run(
            [PY, "-m", "devstack", "run"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for sock in taken:
            sock.close()
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for port, variable in (
        (fs, "FIRESTORE_EMULATOR_HOST"),
        (ps, "PUBSUB_EMULATOR_HOST"),
        (fn, "FUNCTIONS_PORT"),
    ):
        assert f"port {port} ({variable})" in lines[0], lines[0]
