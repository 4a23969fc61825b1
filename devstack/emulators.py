"""Start and stop the gcloud Firestore and Pub/Sub emulators, and the Cloud Storage
emulator (``gcp-storage-emulator``, pinned in requirements-dev.txt), as process groups.

Every way of starting them runs Java as a child process, and terminating the process you
started leaves Java listening (docs/emulators.md). Each emulator therefore runs in its own
session (process group); stopping sends SIGTERM to the whole group, waits, escalates to
SIGKILL, reaps the child and checks that the port is free again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


class StackError(RuntimeError):
    """A clear, user-facing reason why the local stack cannot start."""


def sdk_root() -> Path:
    """The Google Cloud SDK installation, or StackError saying what is missing."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise StackError(
            "gcloud is not on PATH: install the Google Cloud CLI "
            "(https://cloud.google.com/sdk/docs/install) with its Firestore and Pub/Sub "
            "emulator components"
        )
    return Path(os.path.realpath(gcloud)).parent.parent


def check_tools() -> dict[str, Path]:
    """Paths of the emulator launchers; StackError when Java or a component is missing."""
    if shutil.which("java") is None:
        raise StackError("java is not on PATH: the emulators need a Java 11+ runtime")
    root = sdk_root()
    tools = {
        "firestore": root / "platform/cloud-firestore-emulator/cloud_firestore_emulator",
        "pubsub": root / "platform/pubsub-emulator/bin/cloud-pubsub-emulator",
    }
    for name, path in tools.items():
        if not path.exists():
            component = "cloud-firestore-emulator" if name == "firestore" else "pubsub-emulator"
            raise StackError(
                f"the {name} emulator is not installed ({path} is missing): "
                f"run `gcloud components install {component}` or install the "
                f"google-cloud-cli-{component.replace('cloud-', '')} package"
            )
    return tools


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def require_free(host: str, ports: dict[str, int]) -> None:
    """StackError naming every taken port at once, each with the variable that moves it."""
    taken = [(variable, port) for variable, port in ports.items() if not port_is_free(host, port)]
    if not taken:
        return
    clashes = ", ".join(f"port {port} ({variable})" for variable, port in taken)
    moves = " ".join(f"{variable}=<port>" for variable, _ in taken)
    raise StackError(
        f"already in use on {host}: {clashes}; stop whatever listens there (an earlier "
        f"`make run`?) or choose other ports: {moves} make run"
    )


@dataclass
class Emulator:
    """One running emulator process group."""

    name: str
    host: str
    port: int
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("JAVA_TOOL_OPTIONS", "-Xmx1g")
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.address}/"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise StackError(
                    f"the {self.name} emulator exited with code {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise StackError(f"the {self.name} emulator did not answer on {url} in {timeout_s}s")

    def stop(self, timeout_s: float = 8.0) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
        # Java children may outlive the launcher: make sure the whole group is gone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2)
        deadline = time.monotonic() + 3
        while not port_is_free(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.process = None


def firestore_emulator(
    host: str,
    port: int,
    project: str,
    log_path: Path,
    *,
    rules: Path | None = None,
    functions_emulator: str | None = None,
    heap: str = "1g",
    seed_from: Path | None = None,
) -> Emulator:
    """An (unstarted) Firestore emulator that delivers triggers to ``functions_emulator``,
    starting with the data of the export whose metadata file is ``seed_from``."""
    launcher = check_tools()["firestore"]
    command = [str(launcher), "start", f"--host={host}", f"--port={port}"]
    command += [f"--project_id={project}"]
    if rules is not None:
        command.append(f"--rules={rules}")
    if seed_from is not None:
        command.append(f"--seed_from_export={seed_from}")
    if functions_emulator:
        command.append(f"--functions_emulator={functions_emulator}")
    return Emulator(
        "firestore", host, port, command, log_path, env={"JAVA_TOOL_OPTIONS": f"-Xmx{heap}"}
    )


def pubsub_emulator(host: str, port: int, project: str, log_path: Path) -> Emulator:
    """An (unstarted) Pub/Sub emulator."""
    launcher = check_tools()["pubsub"]
    command = [str(launcher), f"--host={host}", f"--port={port}"]
    return Emulator("pubsub", host, port, command, log_path, env={"PUBSUB_PROJECT_ID": project})


def storage_emulator(host: str, port: int, bucket: str, log_path: Path) -> Emulator:
    """An (unstarted) in-memory Cloud Storage emulator that creates ``bucket`` on start.

    Clients reach it through ``STORAGE_EMULATOR_HOST=http://host:port``.
    """
    try:
        import gcp_storage_emulator  # noqa: F401
    except ImportError:
        raise StackError(
            "the Cloud Storage emulator is not installed: run `make .venv/.installed` "
            "(gcp-storage-emulator is pinned in requirements-dev.txt)"
        ) from None
    command = [sys.executable, "-m", "gcp_storage_emulator", "start"]
    command += [f"--host={host}", f"--port={port}", f"--default-bucket={bucket}"]
    command += ["--in-memory", "--quiet"]
    return Emulator("storage", host, port, command, log_path)


def find_export(directory: Path) -> Path | None:
    """The metadata file of the Firestore export in ``directory`` (None: no export there)."""
    found = sorted(directory.glob("**/*.overall_export_metadata")) if directory.is_dir() else []
    return found[-1] if found else None


def export_firestore(host: str, project: str, directory: Path) -> Path:
    """Export every document of the emulator into ``directory``, replacing what is there.

    The emulator writes the export (its own format, every type kept exactly) into a fresh
    directory beside the target, which then replaces the target: an interrupted export
    never leaves half an export behind.
    """
    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = directory.parent / f".{directory.name}.new-{os.getpid()}"
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    response = httpx.post(
        f"http://{host}/emulator/v1/projects/{project}:export",
        json={
            "database": f"projects/{project}/databases/(default)",
            "export_directory": str(fresh),
        },
        timeout=120,
    )
    if response.status_code != 200 or find_export(fresh) is None:
        shutil.rmtree(fresh, ignore_errors=True)
        raise StackError(
            f"the Firestore export failed: HTTP {response.status_code} {response.text}"
        )
    if directory.exists():
        directory.rename(old)
    fresh.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory
