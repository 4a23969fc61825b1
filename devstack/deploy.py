"""The deploy, generated from the function registry (``shared/registry.py``).

``python -m devstack.deploy --project P --region R --profile APP`` prints every command (``make
deploy-plan``: no credentials needed); ``--execute`` runs them in order (``make deploy``).
The plan, in order:

1. enable the APIs the suite uses;
2. check that every secret the functions name has an enabled latest version in Secret
   Manager (a secret without one would leave the function unable to start);
3. create the Pub/Sub topics (an existing topic is fine) and, for BigEye, the private
   bucket of slip images (uniform bucket-level access, public access prevented);
4. build one bundle per function of the target's app (``FunctionSpec.profiles``: one
   deploy = one app, so a KitesForU deploy has no BigEye function and the reverse) in
   ``build/functions/<name>/`` (``main.py`` = the function's module, the ``shared``
   package, the pinned ``requirements.txt``) and deploy it as its own 2nd-gen function
   with its trigger, retry policy, limits and secrets;
   only ``stripe-webhook`` and ``credit-api`` accept unauthenticated calls;
5. one Cloud Scheduler job per schedule (UTC), created or updated;
6. the Firestore rules (``devstack.rules_release``, the Firebase Rules API) and every
   index of ``firestore.indexes.json`` (gcloud): no Firebase CLI needed;
7. a TTL policy on every collection whose documents carry an expiry (``TTL_POLICIES``;
   docs/runbook.md: a TTL on ``created_at`` would delete every log as soon as it is
   written, and why the money records have none);
8. point-in-time recovery (7 days) on the database and a daily backup schedule
   (``BACKUP_RETENTION``); docs/runbook.md gives the restore procedure and its cost.

Commands are argument vectors (never a shell string), printed with ``shlex.join``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.registry import (
    ALL_PROFILES,
    PUBLISHED_TOPICS,
    REGISTRY,
    Document,
    FunctionSpec,
    Http,
    Schedule,
    Topic,
    for_profile,
)

ROOT = Path(__file__).resolve().parent.parent
INDEXES_FILE = ROOT / "firestore.indexes.json"
BUILD_DIR = ROOT / "build" / "functions"
RUNTIME = "python312"
PUBLIC_FUNCTIONS = frozenset({"stripe-webhook", "credit-api"})
PROFILES = ALL_PROFILES
#: (collection group, timestamp field, why the documents may go then). Documents without
#: an expiry are kept on purpose: the money records (``ledger_postings``, transactions,
#: ``stripe_events``, ``processed_invoices``, slips, ``audit_logs``) are what makes a
#: replay a replay and an audit an audit; the analytics counters are removed by
#: ``cron-retention`` after their retention period instead.
TTL_POLICIES: tuple[tuple[str, str, str], ...] = (
    ("usage_logs", "expires_at", "the Profit & Cost 90-day retention of usage logs"),
    ("usage_receipts", "expires_at", "once-only usage receipts, 90 days from receipt"),
    ("processed_provider_events", "expire_at", "provider event markers, kept 30 days"),
    ("scenario_progress_events", "expiresAt", "Kaiwa progress event markers, kept 7 days"),
    ("usage_conversations", "expiresAt", "conversation markers, a month after their month"),
    ("rate_limits", "expires_at", "rate-limit windows, an hour after the window"),
    ("login_throttle", "expires_at", "failed-login records, a day after the last failure"),
    ("learningPathPreviews", "expiresAt", "KitesForU's previews, at their own expiry"),
)
#: How long each daily backup is kept (Firestore allows up to 14 weeks).
BACKUP_RETENTION = "14d"
APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "secretmanager.googleapis.com",
    "logging.googleapis.com",
    "storage.googleapis.com",
)


class DeployError(Exception):
    """A deploy that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Command:
    """One step: an argument vector, what it does, and how to treat "already exists"."""

    argv: tuple[str, ...]
    what: str
    exists_ok: bool = False
    on_exists: tuple[str, ...] | None = None  # run this instead when the thing exists
    expect: str | None = None  # the output must contain this (case-insensitive)

    def __str__(self) -> str:
        import shlex

        return shlex.join(self.argv)


@dataclass(frozen=True)
class Target:
    """Where and as which app to deploy."""

    project: str
    region: str
    profile: str = "kitesforu"
    firestore_location: str | None = None  # Eventarc location of the database
    log_level: str = "INFO"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def trigger_location(self) -> str:
        return self.firestore_location or self.region


def check_registry(specs: Iterable[FunctionSpec]) -> None:
    """Refuse a registry that would deploy something unsafe or ambiguous."""
    names: set[str] = set()
    for spec in specs:
        if spec.name in names:
            raise DeployError(f"function {spec.name} is registered twice")
        names.add(spec.name)
        public = isinstance(spec.trigger, Http) and spec.trigger.public
        if public and spec.name not in PUBLIC_FUNCTIONS:
            raise DeployError(
                f"{spec.name} is marked public; only {sorted(PUBLIC_FUNCTIONS)} may be"
            )
        if not spec.source.exists():
            raise DeployError(f"{spec.name}: {spec.source} does not exist")


def bundle_dir(spec: FunctionSpec, build_dir: Path = BUILD_DIR) -> Path:
    return build_dir / spec.name


def _shown(path: Path) -> str:
    """A path relative to the repository when inside it (commands run from there)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def build_bundle(spec: FunctionSpec, build_dir: Path = BUILD_DIR) -> Path:
    """``build/functions/<name>/``: main.py, the shared package, requirements.txt."""
    out = bundle_dir(spec, build_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copyfile(spec.source, out / "main.py")
    shutil.copytree(
        ROOT / "shared",
        out / "shared",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache"),
    )
    shutil.copyfile(ROOT / "requirements.txt", out / "requirements.txt")
    (out / ".gcloudignore").write_text("__pycache__/\n*.pyc\n")
    return out


def build_all(specs: Iterable[FunctionSpec], build_dir: Path = BUILD_DIR) -> list[Path]:
    return [build_bundle(spec, build_dir) for spec in specs]


def _env_vars(spec: FunctionSpec, target: Target) -> str:
    env = {
        "SCHEMA_PROFILE": target.profile,
        "GOOGLE_CLOUD_PROJECT": target.project,
        "LOG_LEVEL": target.log_level,
        # Cloud Logging JSON (also chosen automatically where K_SERVICE is set): explicit here.
        "LOG_FORMAT": "json",
        **dict(spec.env),
        **target.extra_env,
    }
    return ",".join(f"{k}={v}" for k, v in env.items())


def function_command(spec: FunctionSpec, target: Target, build_dir: Path = BUILD_DIR) -> Command:
    """``gcloud functions deploy`` for one registered function."""
    argv = [
        "gcloud",
        "functions",
        "deploy",
        spec.name,
        "--gen2",
        f"--runtime={RUNTIME}",
        f"--region={target.region}",
        f"--project={target.project}",
        f"--source={_shown(bundle_dir(spec, build_dir))}",
        f"--entry-point={spec.entry_point}",
    ]
    trigger = spec.trigger
    if isinstance(trigger, Http):
        argv.append("--trigger-http")
        public = trigger.public and spec.name in PUBLIC_FUNCTIONS
        argv.append("--allow-unauthenticated" if public else "--no-allow-unauthenticated")
    elif isinstance(trigger, Topic | Schedule):
        argv.append(f"--trigger-topic={trigger.topic}")
    elif isinstance(trigger, Document):
        argv += [
            f"--trigger-event-filters=type={trigger.event_type}",
            "--trigger-event-filters=database=(default)",
            f"--trigger-event-filters-path-pattern=document={trigger.pattern}",
            f"--trigger-location={target.trigger_location}",
        ]
    if not isinstance(trigger, Http):
        argv.append("--retry" if spec.retry else "--no-retry")
    argv += [
        f"--memory={spec.memory}",
        f"--timeout={spec.timeout_s}s",
        f"--max-instances={spec.max_instances}",
    ]
    if spec.concurrency > 1:
        argv += ["--cpu=1", f"--concurrency={spec.concurrency}"]
    argv.append(f"--set-env-vars={_env_vars(spec, target)}")
    if spec.secrets:
        argv.append("--set-secrets=" + ",".join(f"{s}={s}:latest" for s in spec.secrets))
    argv.append("--quiet")
    return Command(tuple(argv), f"deploy {spec.name} ({type(trigger).__name__.lower()})")


def scheduler_job_name(spec: FunctionSpec) -> str:
    return spec.name


def scheduler_command(spec: FunctionSpec, target: Target) -> Command:
    """``gcloud scheduler jobs create pubsub`` (``update`` when the job exists)."""
    assert isinstance(spec.trigger, Schedule)
    schedule = spec.trigger
    common = [
        scheduler_job_name(spec),
        f"--location={target.region}",
        f"--project={target.project}",
        f"--schedule={schedule.cron}",
        f"--time-zone={schedule.time_zone}",
        f"--topic={schedule.topic}",
        "--message-body={}",
    ]
    return Command(
        ("gcloud", "scheduler", "jobs", "create", "pubsub", *common),
        f"schedule {schedule.topic} at '{schedule.cron}' {schedule.time_zone}",
        on_exists=("gcloud", "scheduler", "jobs", "update", "pubsub", *common),
    )


def plan(
    target: Target,
    specs: Sequence[FunctionSpec] = REGISTRY,
    build_dir: Path = BUILD_DIR,
) -> list[Command]:
    """Every command of the deploy, in order."""
    if target.profile not in PROFILES:
        raise DeployError(f"unknown profile {target.profile!r}; one of {', '.join(PROFILES)}")
    if not target.project or not target.region:
        raise DeployError("a project and a region are required (PROJECT=... REGION=...)")
    check_registry(specs)
    # One deploy = one app: only the functions that serve the target's profile.
    specs = for_profile(target.profile, tuple(specs))
    p = f"--project={target.project}"
    commands = [
        Command(("gcloud", "services", "enable", *APIS, p), "enable the APIs"),
    ]
    secrets = sorted({s for spec in specs for s in spec.secrets})
    commands += [
        Command(
            (
                "gcloud",
                "secrets",
                "versions",
                "describe",
                "latest",
                f"--secret={secret}",
                p,
                "--format=value(state)",
            ),
            f"check secret {secret} has an enabled version (docs/runbook.md, Secrets)",
            expect="enabled",
        )
        for secret in secrets
    ]
    commands += [
        Command(
            ("gcloud", "pubsub", "topics", "create", topic, p),
            f"topic {topic}",
            exists_ok=True,
        )
        for topic in topics_of(specs)
    ]
    bucket = target.extra_env.get("SLIP_BUCKET") or f"{target.project}-bigeye-slips"
    if target.profile == "bigeye":
        commands.append(
            Command(
                (
                    "gcloud",
                    "storage",
                    "buckets",
                    "create",
                    f"gs://{bucket}",
                    p,
                    f"--location={target.region}",
                    "--uniform-bucket-level-access",
                    "--public-access-prevention",
                ),
                f"private bucket {bucket} for slip images",
                # A bucket made earlier (or by hand) is made private too.
                on_exists=(
                    "gcloud",
                    "storage",
                    "buckets",
                    "update",
                    f"gs://{bucket}",
                    p,
                    "--uniform-bucket-level-access",
                    "--public-access-prevention",
                ),
            )
        )
    commands += [function_command(spec, target, build_dir) for spec in specs]
    commands += [
        scheduler_command(spec, target) for spec in specs if isinstance(spec.trigger, Schedule)
    ]
    commands.append(
        Command(
            (sys.executable, "-m", "devstack.rules_release", "--project", target.project),
            "Firestore security rules (firestore.rules, through the Firebase Rules API)",
        )
    )
    commands += index_commands(target)
    commands += [
        Command(
            (
                "gcloud",
                "firestore",
                "fields",
                "ttls",
                "update",
                field_name,
                f"--collection-group={collection}",
                "--enable-ttl",
                p,
                "--async",
            ),
            f"TTL policy on {collection}.{field_name} ({why})",
        )
        for collection, field_name, why in TTL_POLICIES
    ]
    commands += [
        Command(
            ("gcloud", "firestore", "databases", "update", "--database=(default)",
             "--enable-pitr", p),
            "point-in-time recovery: every minute of the last 7 days readable",
        ),
        Command(
            ("gcloud", "firestore", "backups", "schedules", "create", "--database=(default)",
             "--recurrence=daily", f"--retention={BACKUP_RETENTION}", p),
            f"daily backup of the database, each kept {BACKUP_RETENTION}",
            exists_ok=True,
        ),
    ]  # fmt: skip
    commands += alert_commands(target)
    return commands


LOSS_ALERT_METRIC = "loss-user-alerts"
LOSS_ALERT_POLICY = ROOT / "devstack" / "monitoring" / "loss-user-alerts.json"


def alert_commands(target: Target) -> list[Command]:
    """The log-based metric counting loss-user alert lines and the alert policy on it (the
    ``alerts`` topic carries the same alerts for the app's own channel)."""
    p = f"--project={target.project}"
    return [
        Command(
            ("gcloud", "logging", "metrics", "create", LOSS_ALERT_METRIC, p,
             "--description=Loss users detected by cron-hourly-loss-scan",
             '--log-filter=jsonPayload.alert="loss_user"'),
            f"log-based metric {LOSS_ALERT_METRIC}",
            exists_ok=True,
        ),
        Command(
            ("gcloud", "alpha", "monitoring", "policies", "create", p,
             f"--policy-from-file={_shown(LOSS_ALERT_POLICY)}"),
            "alert policy on the loss-user metric",
        ),
    ]  # fmt: skip


def index_commands(target: Target, indexes_file: Path = INDEXES_FILE) -> list[Command]:
    """``firestore.indexes.json`` as gcloud commands: each composite index (an existing one is
    fine) and each single-field override (``indexes: []`` = not indexed)."""
    spec = json.loads(indexes_file.read_text())
    p = f"--project={target.project}"
    commands = []
    for index in spec.get("indexes", []):
        fields = [
            "--field-config="
            + ",".join(
                [f"field-path={f['fieldPath']}"]
                + ([f"order={f['order'].lower()}"] if "order" in f else [])
                + ([f"array-config={f['arrayConfig'].lower()}"] if "arrayConfig" in f else [])
            )
            for f in index["fields"]
        ]
        scope = index.get("queryScope", "COLLECTION").lower().replace("_", "-")
        commands.append(
            Command(
                (
                    "gcloud",
                    "firestore",
                    "indexes",
                    "composite",
                    "create",
                    f"--collection-group={index['collectionGroup']}",
                    f"--query-scope={scope}",
                    *fields,
                    p,
                    "--async",
                ),
                f"composite index on {index['collectionGroup']}",
                exists_ok=True,
            )
        )
    for override in spec.get("fieldOverrides", []):
        if override.get("indexes"):
            raise ValueError(f"only 'indexes: []' overrides are deployed: {override}")
        commands.append(
            Command(
                (
                    "gcloud",
                    "firestore",
                    "indexes",
                    "fields",
                    "update",
                    override["fieldPath"],
                    f"--collection-group={override['collectionGroup']}",
                    "--disable-indexes",
                    p,
                    "--async",
                ),
                f"no single-field index on {override['collectionGroup']}.{override['fieldPath']}",
            )
        )
    return commands


def topics_of(specs: Sequence[FunctionSpec]) -> list[str]:
    seen: list[str] = []
    for spec in specs:
        if spec.topic and spec.topic not in seen:
            seen.append(spec.topic)
    return seen + [t for t in PUBLISHED_TOPICS if t not in seen]


def _already_exists(output: str) -> bool:
    text = output.lower()
    # Cloud Storage answers 409 "... you already own it" for a bucket of the project.
    return any(k in text for k in ("already exists", "already_exists", "already own"))


def execute(commands: Sequence[Command], *, echo: bool = True) -> None:
    """Run the commands in order; stop at the first failure with its output."""
    for tool in sorted({c.argv[0] for c in commands}):
        if shutil.which(tool) is None:
            raise DeployError(f"{tool} is not on PATH (needed for the deploy)")
    for command in commands:
        if echo:
            print(f"# {command.what}\n{command}", flush=True)
        done = subprocess.run(command.argv, capture_output=True, text=True, cwd=ROOT)
        output = (done.stdout or "") + (done.stderr or "")
        if done.returncode == 0:
            if command.expect is not None and command.expect not in output.lower():
                raise DeployError(
                    f"failed: {command}\nexpected {command.expect!r} in the output, got: "
                    f"{output.strip() or '(nothing)'}"
                )
            continue
        if _already_exists(output) and command.on_exists is not None:
            again = subprocess.run(command.on_exists, capture_output=True, text=True, cwd=ROOT)
            if again.returncode == 0:
                continue
            output = (again.stdout or "") + (again.stderr or "")
        elif _already_exists(output) and command.exists_ok:
            continue
        raise DeployError(f"failed: {command}\n{output.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.deploy",
        description="Print (default) or run (--execute) the deploy generated from the registry.",
    )
    parser.add_argument("--project", required=True, help="Google Cloud project id")
    parser.add_argument("--region", required=True, help="region of the functions and jobs")
    parser.add_argument(
        "--profile",
        required=True,
        choices=PROFILES,
        help="the app deployed (SCHEMA_PROFILE); only its functions are deployed",
    )
    parser.add_argument(
        "--firestore-location",
        default=None,
        help="location of the Firestore database for document triggers (default: region)",
    )
    parser.add_argument("--execute", action="store_true", help="run the commands")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    args = parser.parse_args(argv)
    target = Target(
        project=args.project,
        region=args.region,
        profile=args.profile,
        firestore_location=args.firestore_location,
    )
    try:
        commands = plan(target, REGISTRY, args.build_dir)
        build_all(for_profile(target.profile), args.build_dir)
        if args.execute:
            execute(commands)
        else:
            for command in commands:
                print(f"# {command.what}\n{command}")
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
