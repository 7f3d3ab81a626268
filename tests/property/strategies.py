"""The one module of hypothesis strategies (as in attrs' tests/strategies.py).

Every property test draws its data from here, so a new test reuses the shapes the
others already trust, and a fix to a strategy helps every test at once.
"""

from __future__ import annotations

import string
from datetime import datetime

from hypothesis import strategies as st

# --- failure text ---------------------------------------------------------------------

words = st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=10)
"""Words of an error message: letters only, so no normalisation ever rewrites them."""

error_messages = st.lists(words, min_size=2, max_size=8).map(" ".join)
"""A plain-words error message (``connection pool exhausted while seeding``)."""

incidental_numbers = st.integers(min_value=0, max_value=10**9)
durations = st.tuples(st.integers(0, 999), st.sampled_from(["ms", "s", "m", "h", "seconds"])).map(
    lambda pair: f"{pair[0]}{pair[1]}"
)
hex_hashes = st.text(alphabet="0123456789abcdef", min_size=7, max_size=40).filter(
    lambda value: any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
)
uuids = st.uuids().map(str)
ports = st.integers(min_value=1, max_value=65535)
timestamps = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2999, 12, 31)).map(
    lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
)
path_segments = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
workspace_roots = st.tuples(path_segments, path_segments).map(lambda p: f"/home/runner/work/{p[0]}/{p[1]}")
temp_dirs = st.tuples(
    st.sampled_from(["/tmp", "/var/folders", "/var/tmp"]), path_segments, path_segments
).map(lambda p: f"{p[0]}/{p[1]}/{p[2]}")


@st.composite
def incidental_values(draw: st.DrawFn) -> dict[str, str]:
    """Everything that differs between two runs of the same failure."""
    return {
        "time": draw(timestamps),
        "number": str(draw(incidental_numbers)),
        "duration": draw(durations),
        "hash": draw(hex_hashes),
        "uuid": draw(uuids),
        "port": str(draw(ports)),
        "workspace": draw(workspace_roots),
        "tmp": draw(temp_dirs),
    }


FAILURE_TEMPLATE = (
    "{time} FAILED {workspace}/tests/test_orders.py::test_total - {message} "
    "(commit {hash}, request {uuid}, attempt {number}) in {duration}",
    "{time} Error: connect to 127.0.0.1:{port} from {tmp}/socket failed: {message}",
)


def render_failure(message: str, values: dict[str, str]) -> list[str]:
    return [line.format(message=message, **values) for line in FAILURE_TEMPLATE]


# --- hostile log lines ----------------------------------------------------------------

ansi_codes = st.sampled_from(
    ["\x1b[31m", "\x1b[0m", "\x1b[1;32;40m", "\x1b]0;title\x07", "\x1b[2K", "\x1b[?25l"]
)
log_lines = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n"), max_size=300
)
decorated_lines = st.lists(st.one_of(log_lines, ansi_codes), max_size=12).map("".join)


# --- safety gate ----------------------------------------------------------------------
# (imports local to this section keep it self-contained; the module stays one place)

from medic.config import RepositoryPolicy  # noqa: E402
from medic.events import (  # noqa: E402
    ActionKind,
    AnalysisCompletedPayload,
    AnalysisMethod,
    Category,
    ProposedAction,
)

repositories = st.tuples(path_segments, path_segments).map(lambda p: f"{p[0]}/{p[1]}")
categories = st.sampled_from(Category)
known_categories = categories.filter(lambda c: c is not Category.UNKNOWN)
action_kinds = st.sampled_from(ActionKind)
proposed_actions = st.builds(ProposedAction, kind=action_kinds, cache_key=st.none() | words)
risks = st.integers(min_value=0, max_value=10)
confidences = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
run_attempts = st.integers(min_value=1, max_value=12)
max_auto_attempts = st.integers(min_value=1, max_value=10)
flags = st.booleans()


@st.composite
def analyses(
    draw: st.DrawFn,
    *,
    repository: st.SearchStrategy[str] = repositories,
    category: st.SearchStrategy[Category] = categories,
    action: st.SearchStrategy[ProposedAction] = proposed_actions,
    risk: st.SearchStrategy[int] = risks,
) -> AnalysisCompletedPayload:
    """Any analysis the analyzer could publish (the gate must be safe for all of them)."""
    return AnalysisCompletedPayload(
        repository=draw(repository),
        run_id=draw(st.integers(min_value=1, max_value=10**12)),
        run_attempt=draw(run_attempts),
        category=draw(category),
        risk=draw(risk),
        confidence=draw(confidences),
        proposed_action=draw(action),
        method=draw(st.sampled_from(AnalysisMethod)),
        fingerprint=draw(hex_hashes),
    )


@st.composite
def repository_policies(
    draw: st.DrawFn, *, repository: str, protected: st.SearchStrategy[bool] = flags
) -> RepositoryPolicy:
    return RepositoryPolicy(
        repository=repository,
        risk_threshold=draw(risks),
        auto_remediate=draw(flags),
        protected=draw(protected),
        slack_channel="#ci",
        allowed_actions=tuple(draw(st.sets(action_kinds))),
    )


@st.composite
def gate_inputs(
    draw: st.DrawFn,
    *,
    category: st.SearchStrategy[Category] = categories,
    protected: st.SearchStrategy[bool] = flags,
) -> tuple[AnalysisCompletedPayload, RepositoryPolicy, int]:
    """An analysis, the policy of its repository, and the automatic-attempt limit."""
    analysis = draw(analyses(category=category))
    policy = draw(repository_policies(repository=analysis.repository, protected=protected))
    return analysis, policy, draw(max_auto_attempts)


# --- safety policy (budgets, breaker, holds, switches, branches) -----------------------

from medic.config import GuardPolicy, Settings  # noqa: E402
from medic.services.safety_gate.guards import Breaker, Incident, Switches  # noqa: E402
from medic.services.safety_gate.policy import PolicyState  # noqa: E402

POLICY_NOW = datetime(2026, 11, 29, 15, 30)
"""A fixed moment: the policy's time-dependent parts (holds, hours) are drawn around it."""

budgets = st.integers(min_value=0, max_value=12)
branch_names = st.sampled_from(["main", "release/1.2", "feature/x", "dev", "release", ""])
branch_globs = st.lists(st.sampled_from(["main", "release/*", "hotfix/**", "dev"]), max_size=3).map(tuple)


@st.composite
def guard_policies(draw: st.DrawFn, *, repository: str, kill: st.SearchStrategy[bool] = flags) -> GuardPolicy:
    return GuardPolicy(
        repository=repository,
        organisation=repository.split("/")[0],
        repository_hourly_budget=draw(budgets),
        organisation_hourly_budget=draw(budgets),
        breaker_threshold=draw(st.integers(1, 5)),
        kill_switch=draw(kill),
        dry_run=draw(flags),
        incident_hold=draw(flags),
        incident_repositories=draw(st.integers(2, 5)),
        incident_window_minutes=10.0,
        incident_hold_minutes=30.0,
        protected_branches=draw(branch_globs),
        fix_allowed_paths=("**",),
        fix_denied_paths=(),
        allow_workflow_edits=draw(flags),
    )


@st.composite
def policy_states(draw: st.DrawFn, *, repository: str) -> PolicyState:
    """Any state the policy's store could hold when a failure of ``repository`` is decided."""
    from datetime import UTC, timedelta

    now = POLICY_NOW.replace(tzinfo=UTC)
    held = draw(flags)
    incident = Incident(
        fingerprint="f",
        held_until=now + timedelta(minutes=5) if held else None,
        held_repositories=("a/b", "c/d", "e/f") if held else (),
    )
    return PolicyState(
        guard=draw(guard_policies(repository=repository)),
        failure_id="failure-under-test",
        now=now,
        switches=Switches(kill_switch=draw(flags), dry_run=draw(flags)),
        breaker=Breaker(repository=repository, open=draw(flags)),
        incident=incident,
    )


@st.composite
def stateful_gate_inputs(
    draw: st.DrawFn,
) -> tuple[AnalysisCompletedPayload, RepositoryPolicy, int, PolicyState]:
    analysis = draw(analyses())
    analysis = analysis.model_copy(update={"branch": draw(branch_names)})
    policy = draw(repository_policies(repository=analysis.repository))
    return analysis, policy, draw(max_auto_attempts), draw(policy_states(repository=analysis.repository))


overridable = st.one_of(st.none(), st.integers(min_value=0, max_value=1000))


@st.composite
def layered_settings(draw: st.DrawFn) -> tuple[Settings, str, int | None, int | None]:
    """Settings with a global budget, maybe an organisation's and maybe a repository's."""
    repository = draw(repositories)
    owner = repository.split("/")[0]
    org_value, repo_value = draw(overridable), draw(overridable)
    settings = Settings(
        repository_hourly_budget=draw(st.integers(0, 1000)),
        organisation_configs={owner: {"repository_hourly_budget": org_value}},
        repository_configs={repository: {"repository_hourly_budget": repo_value}},
    )
    return settings, repository, org_value, repo_value


replica_schedules = st.lists(st.sampled_from([0, 1]), min_size=1, max_size=80)
"""Which of two gate replicas takes its next step (read, or compare-and-set) at each turn."""
