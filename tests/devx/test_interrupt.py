"""Ctrl-C on a test session (as on ``make chaos``): the stack is down within seconds.

A pytest of its own starts the session's stack, keeps requests in flight and is interrupted
(then interrupted again, as an impatient user does). Every port of the stack must be free
within seconds of the first Ctrl-C, the session must end, and no request still being
handled may log into the output pytest has already closed ("--- Logging error ---").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.emulators import port_is_free

ROOT = Path(__file__).resolve().parents[2]
SESSION = Path(__file__).with_name("interrupted_session.py")


def test_ctrl_c_stops_the_stack_within_seconds(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    env = dict(os.environ, INTERRUPT_REPORT=str(report), LOG_LEVEL="INFO")
    args = [sys.executable, "-m", "pytest", str(SESSION), "-q", "-p", "no:cacheprovider"]
    log = tmp_path / "session.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 300  # the stack's start on a loaded machine
        while not report.exists():
            assert child.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the stack did not start"
            time.sleep(0.2)  # polls the child's start: proves nothing
        sent = json.loads(report.read_text())
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):  # the second, impatient Ctrl-C
            os.killpg(child.pid, signal.SIGINT)
        ports = sent["ports"]
        while not all(port_is_free("127.0.0.1", p) for p in ports):
            assert time.time() - sent["interrupted_at"] < 20, f"ports still open: {ports}"
            time.sleep(0.1)
        down_after = time.time() - sent["interrupted_at"]
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    output = log.read_text()
    assert "Logging error" not in output, output
    assert child.returncode != 0, output  # interrupted, not passed
    assert down_after < 20
