"""``python -m devstack run`` (what ``make run`` starts): health, clean shutdown, port clash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.emulators import free_port, port_is_free
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _env(fs: int, ps: int, fn: int, gcs: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{fs}",
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{ps}",
        STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{gcs or free_port()}",
        FUNCTIONS_PORT=str(fn),
        GOOGLE_CLOUD_PROJECT="demo-run-test",
        LOG_LEVEL="WARNING",
    )
    return env


def test_run_serves_health_and_stops_everything_on_sigint(tmp_path: Path) -> None:
    fs, ps, fn, gcs = free_port(), free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"],
        cwd=ROOT,
        env=_env(fs, ps, fn, gcs),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{fn}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout_s=240, interval_s=0.2)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert time.monotonic() - start < 10
        assert proc.returncode == 0
        for port in (fs, ps, fn, gcs):
            assert wait_for(lambda p=port: port_is_free("127.0.0.1", p), timeout_s=3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_port_in_use_gives_a_clear_message() -> None:
    fs, ps = free_port(), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fn = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "devstack", "run"],
            cwd=ROOT,
            env=_env(fs, ps, fn),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"port {fn}" in done.stderr and "FUNCTIONS_PORT" in done.stderr
    assert "Traceback" not in done.stderr
