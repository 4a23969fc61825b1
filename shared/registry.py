"""The one declarative registry of every deployable function.

``make run`` (devstack), the tests and the deploy plan all read this list, so the local
wiring, what is tested and what is deployed cannot drift apart. Each entry names the
function, the file under ``functions/`` that defines it, its entry point, its trigger
(HTTP, Pub/Sub topic, schedule = Cloud Scheduler job publishing to a topic, or a
Firestore document event), its secrets and its runtime limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"


@dataclass(frozen=True)
class Http:
    """An HTTPS endpoint; ``public`` allows unauthenticated callers (Stripe, clients)."""

    public: bool = False


@dataclass(frozen=True)
class Topic:
    """A Pub/Sub topic published by the apps."""

    topic: str


@dataclass(frozen=True)
class Schedule:
    """A Cloud Scheduler cron (UTC) publishing ``{}`` to ``topic``."""

    topic: str
    cron: str
    time_zone: str = "UTC"


#: Every app (schema profile) a deploy can be made for.
ALL_PROFILES: tuple[str, ...] = ("kitesforu", "bigeye", "kaiwa")

DocumentEvent = Literal["written", "created", "updated", "deleted"]


@dataclass(frozen=True)
class Document:
    """A Firestore document event on a path pattern such as ``podcast_jobs/{job_id}``."""

    pattern: str
    event: DocumentEvent = "written"

    @property
    def event_type(self) -> str:
        return f"google.cloud.firestore.document.v1.{self.event}"


Trigger = Http | Topic | Schedule | Document


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """One deployable function; ``module`` and ``entry_point`` default to the name in
    snake case (``cron-reconcile`` -> ``functions/cron_reconcile.py:cron_reconcile``)."""

    name: str
    trigger: Trigger
    description: str
    module: str = ""
    entry_point: str = ""
    secrets: tuple[str, ...] = ()
    retry: bool = True
    memory: str = "256Mi"
    timeout_s: int = 60
    max_instances: int = 20
    concurrency: int = 1
    #: The apps this function serves: ``make deploy PROFILE=x`` deploys exactly the
    #: functions whose ``profiles`` name x (one deploy = one app).
    profiles: tuple[str, ...] = ALL_PROFILES
    #: Environment variables of this function only (settings it needs in production).
    env: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        derived = self.name.replace("-", "_")
        object.__setattr__(self, "module", self.module or derived)
        object.__setattr__(self, "entry_point", self.entry_point or derived)

    @property
    def source(self) -> Path:
        return FUNCTIONS_DIR / f"{self.module}.py"

    @property
    def signature_type(self) -> str:
        return "http" if isinstance(self.trigger, Http) else "cloudevent"

    @property
    def topic(self) -> str | None:
        return self.trigger.topic if isinstance(self.trigger, Topic | Schedule) else None


def cron(*, name: str, schedule: str, description: str, **options: Any) -> FunctionSpec:
    """A scheduled function: its Cloud Scheduler job (``schedule``, a UTC cron) publishes to
    a topic of its own name; one instance at a time unless ``max_instances`` says otherwise."""
    options.setdefault("max_instances", 1)
    return FunctionSpec(
        name=name, trigger=Schedule(topic=name, cron=schedule), description=description, **options
    )


REGISTRY: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        name="stripe-webhook",
        trigger=Http(public=True),
        description="Stripe's signed webhook: purchases, subscriptions, grants, clawbacks",
        secrets=("STRIPE_WEBHOOK_SECRET",),
        timeout_s=60,
        max_instances=20,
        concurrency=1,
    ),
    cron(
        name="cron-reconcile",
        schedule="30 2 * * *",
        description="Reconcile every ledger account; report discrepancies, never fix them",
        memory="512Mi",
        timeout_s=540,
    ),
    cron(
        name="cron-stripe-parked-sweep",
        schedule="17 * * * *",
        description="Replay parked Stripe events whose user link or payment has arrived",
        timeout_s=300,
    ),
    FunctionSpec(
        name="on-podcast-job-failed",
        module="on_job_failed",
        trigger=Document(pattern="podcast_jobs/{job_id}"),
        description="Refund credits_deducted once when a podcast job's status becomes failed",
        profiles=("kitesforu",),
    ),
    FunctionSpec(
        name="on-course-failed",
        module="on_job_failed",
        trigger=Document(pattern="courses/{course_id}"),
        description="Refund credits_charged once when a course's status becomes failed",
        profiles=("kitesforu",),
    ),
    FunctionSpec(
        name="usage-events",
        trigger=Topic(topic="usage-events"),
        description="Meter one AI generation: usage log with cost/revenue/profit, deduction, "
        "daily tokens, monthly usage",
        max_instances=50,
    ),
    FunctionSpec(
        name="usage-limits",
        trigger=Http(public=False),
        description="POST /check: may a user spend these tokens today (and this month)?",
    ),
    FunctionSpec(
        name="on-scenario-progress-written",
        module="on_scenario_progress",
        trigger=Document(pattern="userScenarioProgress/{id}"),
        description="Keep scenarioMetadata aggregates current from userScenarioProgress writes",
        profiles=("kaiwa",),
    ),
    FunctionSpec(
        name="on-engine-cost-written",
        trigger=Document(pattern="ai_engine_costs/{engine_id}"),
        description="Record each version of an engine's cost so usage is priced at its time",
    ),
    FunctionSpec(
        name="credit-api",
        trigger=Http(public=True),
        description="BigEye /api/v1: accounts, balance, history, slip top-ups, job reserve "
        "and finalize, update check",
        secrets=("JWT_SECRET", "SLIP2GO_API_SECRET", "CONFIG_ENCRYPTION_KEY"),
        memory="512Mi",
        max_instances=50,
        concurrency=20,
        profiles=("bigeye",),
    ),
    FunctionSpec(
        name="ledger-api",
        trigger=Http(public=False),
        description="Synchronous credits for app backends: accounts, history, charges, grants, "
        "refunds, adjustments, holds (settle / release)",
        memory="512Mi",
        max_instances=50,
        concurrency=20,
    ),
    cron(
        name="cron-expire-jobs",
        schedule="*/5 * * * *",
        description="RESERVED BigEye jobs and ledger-api holds past expires_at expire with a "
        "full refund",
        timeout_s=300,
    ),
    cron(
        name="cron-reverify-slips",
        schedule="*/10 * * * *",
        description="PENDING BigEye slips left by a Slip2Go outage: verify again and resolve",
        secrets=("SLIP2GO_API_SECRET",),
        timeout_s=300,
        profiles=("bigeye",),
    ),
    cron(
        name="cron-expire-promotions",
        schedule="7 * * * *",
        description="BigEye promotions past their end_date become EXPIRED (audited)",
        timeout_s=300,
        profiles=("bigeye",),
    ),
    FunctionSpec(
        name="on-user-created",
        trigger=Document(pattern="users/{user_id}", event="created"),
        description="Welcome bonus of an ACTIVE WELCOME_BONUS promotion, once per new user",
        profiles=("bigeye",),
    ),
    FunctionSpec(
        name="provider-events",
        trigger=Topic(topic="provider-events"),
        description="Count one model-provider call: health, circuit breaker, quotas, alerts",
        # One instance groups each provider's events into one commit a second (the
        # production load model of docs/benchmarks.md: no provider document above one
        # sustained write per second); it holds a second of deliveries in flight.
        max_instances=1,
        concurrency=500,
        env=(("PROVIDER_GROUP_LINGER_MS", "1000"),),
    ),
    cron(
        name="cron-reset-quotas",
        schedule="0 * * * *",
        description="Reset model quota windows by reset_period; re-check unwell providers",
        timeout_s=300,
    ),
    cron(
        name="cron-daily-rollup",
        schedule="1 0 * * *",
        description="Daily profit aggregate and token history of the day that ended",
        memory="1Gi",
        timeout_s=540,
    ),
    cron(
        name="cron-monthly-rollup",
        schedule="5 0 1 * *",
        description="Monthly, yearly and all-time profit aggregates; Kaiwa usage rollover",
        memory="1Gi",
        timeout_s=540,
    ),
    cron(
        name="cron-hourly-loss-scan",
        schedule="0 * * * *",
        description="loss_users for users whose last-30-day profit is negative",
        memory="512Mi",
        timeout_s=540,
    ),
    cron(
        name="cron-retention",
        schedule="30 3 * * *",
        description="Delete usage logs past 90 days, expired previews, archived daily usage",
        timeout_s=540,
    ),
    FunctionSpec(
        name="on-engine-cost-audit",
        trigger=Document(pattern="ai_engine_costs/{engine_id}"),
        description="profit_audit_log cost_updated entry for every engine cost change",
    ),
    FunctionSpec(
        name="on-plan-pricing-written",
        trigger=Document(pattern="plan_pricing/{plan_id}"),
        description="profit_audit_log pricing_changed entry for every plan pricing change",
    ),
    FunctionSpec(
        name="admin-console",
        # Behind Cloud Functions IAM too (operators open it through `gcloud run services
        # proxy`, docs/console.md); every page but sign-in also needs a super_admin session.
        trigger=Http(public=False),
        description="Operator console: profit charts, money queue (parked Stripe events, "
        "slips), users (balance, transactions, adjust)",
        secrets=("CONSOLE_SESSION_SECRET",),
        max_instances=5,
        concurrency=20,
    ),
)


def by_name(name: str) -> FunctionSpec:
    """The registered function called ``name``."""
    for spec in REGISTRY:
        if spec.name == name:
            return spec
    raise KeyError(name)


def for_profile(
    profile: str, specs: tuple[FunctionSpec, ...] = REGISTRY
) -> tuple[FunctionSpec, ...]:
    """The functions a deploy for ``profile`` ships (ValueError for an unknown profile)."""
    if profile not in ALL_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of {', '.join(ALL_PROFILES)}")
    return tuple(spec for spec in specs if profile in spec.profiles)


#: Topics the suite publishes to for others to subscribe (no function of ours reads them):
#: ``alerts`` carries one message per operator alert (``shared/alerts.py``).
PUBLISHED_TOPICS: tuple[str, ...] = ("alerts",)
