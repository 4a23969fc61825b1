"""The deploy plan generated from the registry, and every bundle imported in isolation."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.deploy import (
    INDEXES_FILE,
    PUBLIC_FUNCTIONS,
    ROOT,
    Command,
    DeployError,
    Target,
    build_bundle,
    check_registry,
    main,
    plan,
)
from shared.registry import (
    ALL_PROFILES,
    REGISTRY,
    Document,
    FunctionSpec,
    Http,
    Schedule,
    Topic,
    by_name,
    for_profile,
)

TARGET = Target(project="acme-prod", region="europe-west1", profile="bigeye")
BIGEYE_SPECS = for_profile("bigeye")


def _deploys(commands: list[Command]) -> dict[str, tuple[str, ...]]:
    return {c.argv[3]: c.argv for c in commands if c.argv[:3] == ("gcloud", "functions", "deploy")}


def _flag(argv: tuple[str, ...], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]


def test_every_function_of_the_app_is_deployed_on_its_own(tmp_path: Path) -> None:
    deploys = _deploys(plan(TARGET, REGISTRY, tmp_path))
    assert sorted(deploys) == sorted(s.name for s in BIGEYE_SPECS)
    for spec in BIGEYE_SPECS:
        argv = deploys[spec.name]
        assert "--gen2" in argv and "--runtime=python312" in argv
        assert _flag(argv, "region") == ["europe-west1"]
        assert _flag(argv, "project") == ["acme-prod"]
        assert _flag(argv, "source") == [str(tmp_path / spec.name)]
        assert _flag(argv, "entry-point") == [spec.entry_point]
        assert _flag(argv, "memory") == [spec.memory]
        assert _flag(argv, "timeout") == [f"{spec.timeout_s}s"]
        assert _flag(argv, "max-instances") == [str(spec.max_instances)]
        env = dict(kv.split("=", 1) for kv in _flag(argv, "set-env-vars")[0].split(","))
        assert env["SCHEMA_PROFILE"] == "bigeye"
        assert env["GOOGLE_CLOUD_PROJECT"] == "acme-prod"
        for key, value in spec.env:
            assert env[key] == value
        secrets = _flag(argv, "set-secrets")
        if spec.secrets:
            assert secrets == [",".join(f"{s}={s}:latest" for s in spec.secrets)]
        else:
            assert secrets == []
        trigger = spec.trigger
        if isinstance(trigger, Http):
            assert "--trigger-http" in argv
            public = "--allow-unauthenticated" in argv
            assert public == (spec.name in PUBLIC_FUNCTIONS)
            assert public or "--no-allow-unauthenticated" in argv
            assert "--retry" not in argv
        elif isinstance(trigger, Topic | Schedule):
            assert _flag(argv, "trigger-topic") == [trigger.topic]
            assert "--retry" in argv
        else:
            assert isinstance(trigger, Document)
            assert _flag(argv, "trigger-event-filters") == [
                f"type={trigger.event_type}",
                "database=(default)",
            ]
            assert _flag(argv, "trigger-event-filters-path-pattern") == [
                f"document={trigger.pattern}"
            ]
            assert _flag(argv, "trigger-location") == ["europe-west1"]
            assert "--retry" in argv
        if spec.concurrency > 1:
            assert "--cpu=1" in argv and f"--concurrency={spec.concurrency}" in argv


def test_only_the_webhook_and_the_credit_api_are_public(tmp_path: Path) -> None:
    deploys = _deploys(plan(TARGET, REGISTRY, tmp_path))
    public = {n for n, argv in deploys.items() if "--allow-unauthenticated" in argv}
    assert public <= PUBLIC_FUNCTIONS
    registered = {s.name for s in BIGEYE_SPECS}
    assert public == PUBLIC_FUNCTIONS & registered
    rogue = FunctionSpec(
        name="usage-limits-public",
        module="usage_limits"
        if (REGISTRY[0].source.parent / "usage_limits.py").exists()
        else REGISTRY[0].module,
        entry_point="x",
        trigger=Http(public=True),
        description="would be public",
    )
    with pytest.raises(DeployError, match="only"):
        check_registry([rogue])


def test_topics_schedules_rules_indexes_and_ttl(tmp_path: Path) -> None:
    commands = plan(TARGET, REGISTRY, tmp_path)
    created = [
        c.argv[4] for c in commands if c.argv[:4] == ("gcloud", "pubsub", "topics", "create")
    ]
    assert created == [*dict.fromkeys(s.topic for s in BIGEYE_SPECS if s.topic), "alerts"]
    metric = [c for c in commands if c.argv[:4] == ("gcloud", "logging", "metrics", "create")]
    assert len(metric) == 1 and '--log-filter=jsonPayload.alert="loss_user"' in metric[0].argv
    policy = [
        c for c in commands if c.argv[:5] == ("gcloud", "alpha", "monitoring", "policies", "create")
    ]
    (path,) = _flag(policy[0].argv, "policy-from-file")
    assert (
        "loss-user-alerts"
        in json.loads((ROOT / path).read_text())["conditions"][0]["conditionThreshold"]["filter"]
    )
    jobs = {
        c.argv[5]: c
        for c in commands
        if c.argv[:5] == ("gcloud", "scheduler", "jobs", "create", "pubsub")
    }
    schedules = [s for s in BIGEYE_SPECS if isinstance(s.trigger, Schedule)]
    assert sorted(jobs) == sorted(s.name for s in schedules)
    for spec in schedules:
        assert isinstance(spec.trigger, Schedule)
        job = jobs[spec.name]
        assert _flag(job.argv, "schedule") == [spec.trigger.cron]
        assert _flag(job.argv, "time-zone") == ["UTC"]
        assert _flag(job.argv, "topic") == [spec.trigger.topic]
        assert job.on_exists is not None and job.on_exists[3] == "update"
    assert not any("firebase" in c.argv[0] for c in commands)  # no Firebase CLI needed
    assert any(c.argv[1:3] == ("-m", "devstack.rules_release") for c in commands)
    composite = [
        c
        for c in commands
        if c.argv[:5] == ("gcloud", "firestore", "indexes", "composite", "create")
    ]
    declared = json.loads(INDEXES_FILE.read_text())
    assert len(composite) == len(declared["indexes"]) and all(c.exists_ok for c in composite)
    first = declared["indexes"][0]
    assert composite[0].argv[5] == f"--collection-group={first['collectionGroup']}"
    assert composite[0].argv[7] == (
        f"--field-config=field-path={first['fields'][0]['fieldPath']},"
        f"order={first['fields'][0]['order'].lower()}"
    )
    overrides = [
        c for c in commands if c.argv[:5] == ("gcloud", "firestore", "indexes", "fields", "update")
    ]
    assert len(overrides) == len(declared.get("fieldOverrides", []))
    ttl = [c for c in commands if c.argv[:4] == ("gcloud", "firestore", "fields", "ttls")]
    groups = {_flag(c.argv, "collection-group")[0]: c.argv[5] for c in ttl}
    assert groups == {
        "usage_logs": "expires_at",
        "usage_receipts": "expires_at",
        "processed_provider_events": "expire_at",
        "scenario_progress_events": "expiresAt",
        "usage_conversations": "expiresAt",
        "rate_limits": "expires_at",
        "login_throttle": "expires_at",
        "learningPathPreviews": "expiresAt",
    }
    assert all("--enable-ttl" in c.argv for c in ttl)
    pitr = [c for c in commands if c.argv[:4] == ("gcloud", "firestore", "databases", "update")]
    assert len(pitr) == 1 and "--enable-pitr" in pitr[0].argv
    backups = [c for c in commands if c.argv[:5] == ("gcloud", "firestore", "backups",
                                                     "schedules", "create")]  # fmt: skip
    assert len(backups) == 1 and _flag(backups[0].argv, "recurrence") == ["daily"]
    assert backups[0].exists_ok
    secrets = sorted({s for spec in BIGEYE_SPECS for s in spec.secrets})
    checked = [
        c.argv[5].removeprefix("--secret=")
        for c in commands
        if c.argv[:5] == ("gcloud", "secrets", "versions", "describe", "latest")
    ]
    assert checked == secrets
    assert "CONFIG_ENCRYPTION_KEY" in by_name("credit-api").secrets
    assert all(
        c.expect == "enabled" for c in commands if c.argv[:3] == ("gcloud", "secrets", "versions")
    )
    # Functions deploy after their topics exist; schedules after the functions.
    order = [c.argv[:3] for c in commands]
    assert order.index(("gcloud", "pubsub", "topics")) < order.index(
        ("gcloud", "functions", "deploy")
    )


def test_plan_prints_without_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--project", "p1", "--region", "us-central1", "--build-dir", str(tmp_path)]
    code = main([*args, "--profile", "kaiwa"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("gcloud functions deploy ") == len(for_profile("kaiwa"))
    assert "'--message-body={}'" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        s.name for s in for_profile("kaiwa")
    )
    bad = main(
        ["--project", "p1", "--region", "", "--build-dir", str(tmp_path), "--profile", "kaiwa"]
    )
    assert bad == 2


def test_one_deploy_is_one_app(tmp_path: Path) -> None:
    """PROFILE=kitesforu has no BigEye function; PROFILE=bigeye no KitesForU trigger."""
    plans = {
        p: _deploys(plan(Target("acme", "europe-west1", profile=p), REGISTRY, tmp_path))
        for p in ALL_PROFILES
    }
    bigeye_only = {"credit-api", "on-user-created"}
    kitesforu_only = {"on-podcast-job-failed", "on-course-failed"}
    assert not bigeye_only & set(plans["kitesforu"])
    assert not kitesforu_only & set(plans["bigeye"])
    assert bigeye_only <= set(plans["bigeye"]) and kitesforu_only <= set(plans["kitesforu"])
    assert "on-scenario-progress-written" in plans["kaiwa"]
    for profile, deploys in plans.items():
        assert "ledger-api" in deploys and "cron-expire-jobs" in deploys
        for argv in deploys.values():
            env = dict(kv.split("=", 1) for kv in _flag(argv, "set-env-vars")[0].split(","))
            assert env["SCHEMA_PROFILE"] == profile
            assert "SERVE_ALL_PROFILES" not in env
        triggers = [_flag(a, "trigger-event-filters-path-pattern") for a in deploys.values()]
        patterns = {t[0] for t in triggers if t}
        if profile != "kitesforu":
            assert not {"document=podcast_jobs/{job_id}", "document=courses/{course_id}"} & (
                patterns
            )
    # Every registered function is deployed by some app; none for an unknown one.
    assert set().union(*map(set, plans.values())) == {s.name for s in REGISTRY}
    with pytest.raises(DeployError, match="unknown profile"):
        plan(Target("acme", "europe-west1", profile="acme"), REGISTRY, tmp_path)


def test_make_deploy_plan_needs_a_profile_and_prints_only_its_functions() -> None:
    root = Path(__file__).resolve().parents[2]
    missing = subprocess.run(
        ["make", "-s", "deploy-plan", "PROFILE="], cwd=root, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "PROFILE=" in missing.stderr
    kites = subprocess.run(
        ["make", "-s", "deploy-plan", "PROFILE=kitesforu"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert kites.returncode == 0, kites.stderr
    assert "gcloud functions deploy ledger-api " in kites.stdout
    assert "gcloud functions deploy credit-api " not in kites.stdout
    assert "gcloud functions deploy on-user-created " not in kites.stdout


def test_every_bundle_imports_in_a_clean_interpreter(tmp_path: Path) -> None:
    bundles = {spec.name: (spec, build_bundle(spec, tmp_path)) for spec in REGISTRY}
    for name, (_, path) in bundles.items():
        assert sorted(p.name for p in path.iterdir()) == [
            ".gcloudignore",
            "main.py",
            "requirements.txt",
            "shared",
        ], name
        assert (path / "shared" / "__init__.py").exists()
        assert not list(path.rglob("__pycache__"))
        requirements = (path / "requirements.txt").read_text().splitlines()
        pinned = [r for r in requirements if r and not r.startswith("#")]
        assert all("==" in r for r in pinned)
        assert any(r.startswith("functions-framework==") for r in pinned)

    probe = (
        "import sys, json; sys.path.insert(0, {path!r}); import main; "
        "fns = [getattr(main, e) for e in {entries!r}]; "
        "leaks = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('devstack', 'tests', 'bench')); "
        "print(json.dumps({{'callable': all(map(callable, fns)), 'file': main.__file__, "
        "'shared': sys.modules['shared'].__file__, 'leaks': leaks}}))"
    )

    entries: dict[str, list[str]] = {}
    for spec in REGISTRY:
        entries.setdefault(spec.module, []).append(spec.entry_point)

    def check(item: tuple[FunctionSpec, Path]) -> tuple[str, dict[str, Any]]:
        spec, path = item
        done = subprocess.run(
            [
                sys.executable,
                "-I",
                "-c",
                probe.format(path=str(path), entries=entries[spec.module]),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
        assert done.returncode == 0, f"{spec.name}: {done.stderr[-2000:]}"
        return spec.name, json.loads(done.stdout.strip().splitlines()[-1])

    # Functions sharing a module have identical bundles: one interpreter per module.
    one_per_module = {spec.module: (spec, path) for spec, path in bundles.values()}
    with ThreadPoolExecutor(2) as pool:
        results = dict(pool.map(check, one_per_module.values()))
    assert len(results) == len(one_per_module)
    for name, found in results.items():
        path = bundles[name][1]
        assert found["callable"], name
        assert found["file"] == str(path / "main.py"), name
        assert found["shared"] == str(path / "shared" / "__init__.py"), name
        assert found["leaks"] == [], name


def test_preflight_stops_on_a_secret_without_an_enabled_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fake ``gcloud`` answers like Secret Manager: no version, a disabled one, an enabled one."""
    from devstack.deploy import execute

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "gcloud"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *--secret=NOVERSION*) echo "NOT_FOUND: Secret Version [latest] not found" >&2;'
        " exit 1;;\n"
        '  *--secret=DISABLED*) echo "disabled";;\n'
        '  *) echo "enabled";;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    specs = [
        FunctionSpec(
            name=f"fn-{secret.lower()}",
            module=REGISTRY[0].module,
            entry_point="x",
            trigger=Topic(topic="t"),
            description="d",
            secrets=(secret,),
        )
        for secret in ("GOOD", "DISABLED", "NOVERSION")
    ]
    checks = [
        c
        for c in plan(TARGET, specs, tmp_path)
        if c.argv[:4] == ("gcloud", "secrets", "versions", "describe")
    ]
    by_secret = {c.argv[5].removeprefix("--secret="): c for c in checks}
    execute([by_secret["GOOD"]], echo=False)
    with pytest.raises(DeployError, match="expected 'enabled'"):
        execute([by_secret["DISABLED"]], echo=False)
    with pytest.raises(DeployError, match="NOT_FOUND"):
        execute([by_secret["NOVERSION"]], echo=False)
