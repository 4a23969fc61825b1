"""The production load model: sustained writes/s on the hottest document of each pattern.

A simulation over recorded write profiles (``bench/profile.py``), no cloud needed. Each
operation's profile says how many times one run writes each collection pattern; each
pattern has a scope, read from its placeholders:

- ``user`` (``{user}`` or the client's ``{ip}`` in the id): the hottest user's share of the
  operation's rate;
- ``provider`` (``{provider}``/``{model}``): the hottest provider's share;
- ``promotion`` (``{promo}``): every top-up under the one running promotion;
- ``event`` (``{event}``/``{id}``): a document of its own per operation, never hot;
- ``app``: one document (or ``fanout`` shards, hashed evenly) shared by every run.

Activity is Zipf-skewed: the k-th most active of N subjects has weight ``k**-s``. The
hottest document of a pattern gets the sum over operations of
``rate x share of the hottest subject x writes per run / fanout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

#: Google's guidance: about one sustained write per second per document.
SUSTAINED_WRITES_PER_DOC = 1.0


@cache
def zipf_top_share(n: int, s: float = 1.0) -> float:
    """The share of all activity of the most active of ``n`` Zipf(s)-weighted subjects."""
    if n <= 0:
        raise ValueError("n must be positive")
    return 1.0 / sum(k**-s for k in range(1, n + 1))


def scope_of(pattern: str) -> str:
    """``user``, ``provider``, ``promotion``, ``event`` or ``app`` (see the module docstring)."""
    if "{user}" in pattern or "{ip}" in pattern:
        return "user"
    if "{provider}" in pattern or "{model}" in pattern:
        return "provider"
    if "{promo}" in pattern:
        return "promotion"
    if "{event}" in pattern or "{id}" in pattern:
        return "event"
    return "app"


@dataclass(frozen=True)
class Profile:
    """One operation's recorded cost per run (averaged over its runs)."""

    operation: str
    reads: float
    writes: float
    deletes: float = 0.0
    units: float = 0.0
    creates: float = 0.0
    #: collection pattern -> writes per run
    patterns: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Load:
    """How often an operation runs and over how many subjects its activity is spread."""

    operation: str
    per_s: float
    users: int = 100_000
    providers: int = 5
    zipf_s: float = 1.0
    #: Commits per second per provider when its events are grouped (``None``: one per run).
    group_commits_per_s: float | None = None


@dataclass(frozen=True)
class HotDoc:
    pattern: str
    scope: str
    writes_per_s: float
    #: operations that write it, with their share of the rate
    sources: dict[str, float]

    @property
    def app_wide(self) -> bool:
        return self.scope in ("app", "provider", "promotion")

    @property
    def over_budget(self) -> bool:
        return self.writes_per_s > SUSTAINED_WRITES_PER_DOC


def hottest(
    profiles: dict[str, Profile], loads: list[Load], fanouts: dict[str, int] | None = None
) -> list[HotDoc]:
    """Sustained writes/s on the hottest document of every pattern, hottest first."""
    fanouts = fanouts or {}
    rates: dict[str, dict[str, float]] = {}
    for load in loads:
        profile = profiles.get(load.operation)
        if profile is None:
            continue
        for pat, writes in profile.patterns.items():
            scope = scope_of(pat)
            if scope == "event":
                share = 0.0  # a fresh document per run: at most a run's own writes
            elif scope == "user":
                share = zipf_top_share(load.users, load.zipf_s)
            elif scope == "provider":
                share = zipf_top_share(load.providers, load.zipf_s)
            elif scope == "promotion":
                share = 1.0
            else:
                share = 1.0
            share /= max(1, fanouts.get(pat, 1))  # sharded: hashed evenly over the shards
            runs = load.per_s * share
            if scope == "provider" and load.group_commits_per_s is not None:
                runs = min(runs, load.group_commits_per_s)  # one write per group commit
            rates.setdefault(pat, {})[load.operation] = runs * writes
    docs = [HotDoc(p, scope_of(p), sum(src.values()), src) for p, src in rates.items()]
    return sorted(docs, key=lambda d: (-d.writes_per_s, d.pattern))


def per_user_threshold(profile: Profile) -> float | None:
    """Runs/s of one user at which that user's busiest own document reaches the budget."""
    own = [w for p, w in profile.patterns.items() if scope_of(p) == "user" and w > 0]
    return SUSTAINED_WRITES_PER_DOC / max(own) if own else None


def daily_writes(profiles: dict[str, Profile], loads: list[Load]) -> dict[str, float]:
    """Documents written per day by each operation at the given load."""
    return {
        load.operation: load.per_s * 86_400 * profiles[load.operation].writes
        for load in loads
        if load.operation in profiles
    }
