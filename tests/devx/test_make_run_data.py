"""``make run``: the "what you can do now" block, and data kept across runs
(export on exit, import at start) without the demo data overwriting it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.emulators import free_port
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "demo-data-test"


def start(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[str], int, int]:
    fs, ps, fn = free_port(), free_port(), free_port()
    env = dict(os.environ)
    env.update(
        FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{fs}",
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{ps}",
        FUNCTIONS_PORT=str(fn),
        STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}",
        GOOGLE_CLOUD_PROJECT=PROJECT,
        LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run", "--no-scheduler", *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{fn}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(healthy, timeout_s=240, interval_s=0.2)
    return proc, fs, fn


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def doc_url(fs: int, path: str) -> str:
    return f"http://127.0.0.1:{fs}/v1/projects/{PROJECT}/databases/(default)/documents/{path}"


OWNER = {"Authorization": "Bearer owner"}


def test_ready_block_and_data_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, fs, fn = start(tmp_path, "--data", str(data))
    try:
        # A user's own document, and a change to a demo document.
        httpx.patch(
            doc_url(fs, "users/kept_user"),
            json={"fields": {"email": {"stringValue": "kept@example.com"}}},
            headers=OWNER,
        ).raise_for_status()
        httpx.patch(
            doc_url(fs, "ai_engine_costs/dalle_3_standard?updateMask.fieldPaths=notes"),
            json={"fields": {"notes": {"stringValue": "changed by hand"}}},
            headers=OWNER,
        ).raise_for_status()
    finally:
        out = stop(proc) if proc.poll() is None else proc.communicate()[0]
    assert "What you can do now" in out
    assert f"http://127.0.0.1:{fn}/credit-api/" in out
    assert "python -m devstack.usage_send" in out and "credits-admin show" in out
    assert out.index("What you can do now") < out.index("ready; Ctrl-C to stop")
    assert f"data exported to     {data}" in out
    assert list(data.glob("**/*.overall_export_metadata"))

    proc, fs, fn = start(tmp_path, "--data", str(data))
    try:
        kept = httpx.get(doc_url(fs, "users/kept_user"), headers=OWNER)
        assert kept.status_code == 200, kept.text
        assert kept.json()["fields"]["email"]["stringValue"] == "kept@example.com"
        engine = httpx.get(doc_url(fs, "ai_engine_costs/dalle_3_standard"), headers=OWNER).json()
        assert engine["fields"]["notes"]["stringValue"] == "changed by hand"
    finally:
        out = stop(proc) if proc.poll() is None else proc.communicate()[0]
    assert f"data imported from   {data}" in out


def test_import_of_a_directory_without_an_export_is_refused(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        FIRESTORE_EMULATOR_HOST=f"127.0.0.1:{free_port()}",
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{free_port()}",
        FUNCTIONS_PORT=str(free_port()),
        STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "run", "--import", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and f"no Firestore export in {tmp_path}" in done.stderr
