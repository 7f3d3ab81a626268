"""The one module of hypothesis strategies (as in attrs' tests/strategies.py).

Every property test draws its data from here, so a new test reuses the shapes the
others already trust, and a fix to a strategy helps every test at once.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

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


@st.composite
def _hex_hashes(draw: st.DrawFn) -> str:
    """Hex of 7-40 characters with at least one digit and one letter (built, not filtered,
    so hypothesis never gives up on it)."""
    body = list(draw(st.text(alphabet="0123456789abcdef", min_size=5, max_size=38)))
    for needed in (draw(st.sampled_from(string.digits)), draw(st.sampled_from("abcdef"))):
        body.insert(draw(st.integers(min_value=0, max_value=len(body))), needed)
    return "".join(body)


hex_hashes = _hex_hashes()
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
from medic.services.safety_gate.policy import MIN_CONFIDENCE  # noqa: E402

GateInput = tuple[AnalysisCompletedPayload, RepositoryPolicy, int]

repositories = st.tuples(path_segments, path_segments).map(lambda p: f"{p[0]}/{p[1]}")
categories = st.sampled_from(Category)
known_categories = st.sampled_from([c for c in Category if c is not Category.UNKNOWN])
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
def any_gate_inputs(
    draw: st.DrawFn,
    *,
    category: st.SearchStrategy[Category] = categories,
    protected: st.SearchStrategy[bool] = flags,
) -> GateInput:
    """Every field drawn independently: wide, but it rarely lets every check pass at once."""
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

# The gate's checks, each as the edge where it still passes and the first value where it
# fails. A check the gate gains (policy, budgets, ...) adds one entry to GATE_CHECKS and
# every property below exercises it: passing at its edge, and failing alone.

automatic_actions = st.sampled_from([kind for kind in ActionKind if kind is not ActionKind.NONE])
below_floor = math.nextafter(MIN_CONFIDENCE, 0.0)
"""The largest confidence that is still below the floor (the floor itself passes)."""


@st.composite
def passing_gate_inputs(draw: st.DrawFn, *, at_edges: st.SearchStrategy[bool] = flags) -> GateInput:
    """An analysis, policy and attempt limit for which every check passes.

    Each value sits exactly on the boundary that still passes (risk equal to the
    threshold, confidence equal to the floor, the last allowed attempt) whenever
    ``at_edges`` draws True: by default each edge is a coin toss, so every combination
    is reached; ``st.just(True)`` puts every value on its edge at once.
    """
    kind = draw(automatic_actions)
    threshold = draw(risks)
    limit = draw(st.integers(min_value=2, max_value=10))
    risk = threshold if draw(at_edges) else draw(st.integers(0, threshold))
    confidence = (
        MIN_CONFIDENCE
        if draw(at_edges)
        else draw(st.floats(min_value=MIN_CONFIDENCE, max_value=1.0, allow_nan=False))
    )
    attempt = limit - 1 if draw(at_edges) else draw(st.integers(1, limit - 1))
    extra_actions = draw(st.sets(action_kinds))
    analysis = AnalysisCompletedPayload(
        repository=draw(repositories),
        run_id=draw(st.integers(min_value=1, max_value=10**12)),
        run_attempt=attempt,
        category=draw(known_categories),
        risk=risk,
        confidence=confidence,
        proposed_action=ProposedAction(kind=kind, cache_key=draw(st.none() | words)),
        method=draw(st.sampled_from(AnalysisMethod)),
        fingerprint=draw(hex_hashes),
    )
    policy = RepositoryPolicy(
        repository=analysis.repository,
        risk_threshold=threshold,
        auto_remediate=True,
        protected=False,
        slack_channel="#ci",
        allowed_actions=tuple(sorted({kind, *extra_actions}, key=lambda k: k.value)),
    )
    return analysis, policy, limit


def _unknown_cause(given: GateInput) -> GateInput:
    analysis, policy, limit = given
    return analysis.model_copy(update={"category": Category.UNKNOWN}), policy, limit


def _protected(given: GateInput) -> GateInput:
    analysis, policy, limit = given
    return analysis, policy.model_copy(update={"protected": True}), limit


def _turned_off(given: GateInput) -> GateInput:
    analysis, policy, limit = given
    return analysis, policy.model_copy(update={"auto_remediate": False}), limit


def _one_above_threshold(given: GateInput) -> GateInput:
    analysis, policy, limit = given
    threshold = min(policy.risk_threshold, 9)  # risk tops out at 10
    return (
        analysis.model_copy(update={"risk": threshold + 1}),
        policy.model_copy(update={"risk_threshold": threshold}),
        limit,
    )


def _just_below_floor(given: GateInput) -> GateInput:
    analysis, policy, limit = given
    return analysis.model_copy(update={"confidence": below_floor}), policy, limit


def _action_not_allowed(given: GateInput) -> GateInput:
    analysis, policy, limit = given
    allowed = tuple(k for k in policy.allowed_actions if k is not analysis.proposed_action.kind)
    return analysis, policy.model_copy(update={"allowed_actions": allowed}), limit


def _attempt_limit_reached(given: GateInput) -> GateInput:
    analysis, policy, limit = given
    return analysis.model_copy(update={"run_attempt": limit}), policy, limit


GATE_CHECKS: dict[str, Callable[[GateInput], GateInput]] = {
    "unknown cause": _unknown_cause,
    "protected repository": _protected,
    "automation turned off": _turned_off,
    "risk one above the threshold": _one_above_threshold,
    "confidence just below the floor": _just_below_floor,
    "action not allowed": _action_not_allowed,
    "attempt limit reached": _attempt_limit_reached,
}
"""Name -> the smallest change that makes exactly that one check fail."""

gate_check_names = st.sampled_from(sorted(GATE_CHECKS))


@st.composite
def one_check_failing(draw: st.DrawFn) -> tuple[str, GateInput]:
    """A passing input, often on its edges, with exactly one check pushed just past its edge."""
    name = draw(gate_check_names)
    return name, GATE_CHECKS[name](draw(passing_gate_inputs()))


@st.composite
def nothing_to_do_inputs(draw: st.DrawFn) -> GateInput:
    """A cause the rules know well and for which no action exists (the team is told)."""
    analysis, policy, limit = draw(passing_gate_inputs())
    update = {"proposed_action": ProposedAction(kind=ActionKind.NONE), "method": AnalysisMethod.RULES}
    return analysis.model_copy(update=update), policy, limit


gate_inputs = st.one_of(
    any_gate_inputs(),
    passing_gate_inputs(),
    one_check_failing().map(lambda named: named[1]),
    nothing_to_do_inputs(),
)
"""A mix in which every outcome (automatic, approval, nothing to do) is common."""


# --- redaction ------------------------------------------------------------------------

SECRET_FORMATS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "secrets" / "formats.json").read_text()
)["formats"]
"""Real-world secret formats (issuer, literal, the lines CI logs print them in)."""

secrets_in_context = st.sampled_from(
    [(f["secret"], context.format(secret=f["secret"])) for f in SECRET_FORMATS for context in f["contexts"]]
)
"""``(secret, line)``: a secret literal and a log line that prints it."""

redaction_fragments = st.sampled_from(
    [
        "password=",
        "token: ",
        "'",
        '"',
        "Bearer ",
        "Authorization: ",
        "https://",
        "u:p@",
        "[REDACTED:token]",
        "=",
        ":",
        "@",
        "\n",
        " ",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "-----END RSA PRIVATE KEY-----",
        "https://hooks.slack.com/services/",
    ]
)
"""Pieces of the syntax the patterns key on, to provoke overlaps between them."""

redaction_texts = st.lists(
    st.one_of(redaction_fragments, secrets_in_context.map(lambda pair: pair[1]), st.text(max_size=12)),
    max_size=25,
).map("".join)
"""Hostile text: secrets in their contexts, pattern syntax and noise, concatenated."""

_separators = st.sampled_from([" ", "\n", "\t", " \n", "\r\n"])


@st.composite
def texts_with_secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Noise and pattern syntax around secret lines, and the literals that must not survive.

    A separator of white space around each secret line keeps noise from legitimately
    extending a token (``ghp_…x`` + ``yz`` is still one token, and still must go).
    """
    parts: list[str] = []
    secrets: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        parts.append(
            draw(st.lists(st.one_of(redaction_fragments, st.text(max_size=12)), max_size=4).map("".join))
        )
        secret, line = draw(secrets_in_context)
        parts.extend([draw(_separators), line, draw(_separators)])
        secrets.append(secret)
    parts.append(draw(st.text(max_size=12)))
    return "".join(parts), secrets


# --- the analyzer's model path ----------------------------------------------------------

from medic.llm.schema import ModelVerdict  # noqa: E402

_Shape = TypeVar("_Shape")


def rules_results(shape: Callable[..., _Shape]) -> st.SearchStrategy[_Shape]:
    """What the rules concluded before the model is asked, built as ``shape`` (any class with
    the rules result's fields: the tests use a stand-in, the engine its own)."""
    return st.builds(
        shape,
        category=categories,
        risk=risks,
        confidence=st.floats(0, 1),
        proposed_action=action_kinds.map(lambda kind: ProposedAction(kind=kind)),
    )


model_verdicts = st.builds(
    ModelVerdict, category=categories, risk=risks, confidence=st.floats(0, 1), action=action_kinds
)
"""Any answer the model could give (it is untrusted: the combination must stay safe for all)."""


# --- event bytes --------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
"""Any JSON value, including the ones a lax validator might take for another type."""
