"""The pipeline's figures: failures per second through every service, and latency at a steady rate.

Each failure is a signed ``workflow_run`` webhook, posted by a sender in a process of its own
(:mod:`tests.bench.sender_process`), which notes when each POST began. The bench reads every
event on an ordered consumer of the event stream and takes, as the event's time, the time
JetStream stored it (the message's metadata, nats-server's wall clock, the clock the sender
used): on a busy machine the watcher's own delivery can lag behind the stream, and that lag
must not count as the system's; how late the watcher got each event is reported beside
(``watcher_delay_p99_ms``). A failure's milestones are its first
FailureDetected, its GateDecided and its terminal event (GateDecided no_action,
ApprovalRequested or RemediationFinished). A steady run's latencies are those of the POSTs
after its first :data:`WARM_UP_SECONDS`; the warm-up's own and the whole run's are printed beside.

The services run in child processes, in either deployment shape: all of them in one process
(``one_process``, as ``medic run``) or each in its own (``process_per_service``, as the Helm
chart's ``medic service NAME`` pods); see :mod:`tests.bench.services_process`. The sandbox
GitHub and the sandbox model run in one more process (:mod:`tests.bench.github_process`).
Every process's CPU is read from ``/proc/<pid>/stat`` just before the first POST and just
after the last terminal event, so each service's CPU is exact in the per-service shape.

Baselines, measured in the same run on the same server: raw nats-py JetStream publish
(pipelined acks) and pull-and-ack consume for the rates; raw JetStream publish to
ordered-consumer arrival at the same steady rate for the latencies; the one-process shape for
the per-service shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import Process
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from medic.bus import Bus, Topology
from medic.embedded import free_port
from medic.events import EVENT_TYPE_NAMES, decode_event
from medic.services import composition
from tests.bench import cpu_split
from tests.pipeline import WEBHOOK_SECRET

TERMINAL = {"ApprovalRequested", "RemediationFinished"}
SHAPES = ("one_process", "process_per_service")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) of a process, from /proc; None where unreadable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu(postmaster: int | None) -> float | None:
    """CPU seconds of PostgreSQL: the postmaster's own and its reaped children's, plus each live
    backend's (a pooled connection's backend lives through the run, so the postmaster's
    children counters alone would miss it)."""
    if postmaster is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    found = False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a backend that exited meanwhile is in the postmaster's counters
        pid = int(stat.parent.name)
        if pid == postmaster:
            found = True
            total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
        elif int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total if found else None


@dataclass
class Milestones:
    """When each failure's events were stored on the stream (time.time), read on an ordered consumer."""

    detected: dict[str, float] = field(default_factory=dict)
    gated: dict[str, float] = field(default_factory=dict)
    terminal: dict[str, float] = field(default_factory=dict)
    watcher_delays: list[float] = field(default_factory=list)
    """How long after being stored each event reached the watcher (its own lag, not the system's)."""


async def _watch(bus: Bus, expected: set[str], seen: Milestones, all_terminal: asyncio.Event) -> Any:
    async def on_message(msg: Any) -> None:
        stored = msg.metadata.timestamp.timestamp()
        seen.watcher_delays.append(time.time() - stored)
        now = stored
        event = decode_event(msg.data)
        failure_id = event.failure_id
        if failure_id not in expected:
            return  # a re-run's own failure (attempt 2) is not one the sender posted
        kind = event.event_type
        if kind == "FailureDetected":
            seen.detected.setdefault(failure_id, now)
        elif kind == "GateDecided":
            seen.gated.setdefault(failure_id, now)
        terminal = kind in TERMINAL or (
            kind == "GateDecided" and event.payload.outcome.value == "no_action"  # type: ignore[union-attr]
        )
        if terminal and failure_id not in seen.terminal:
            seen.terminal[failure_id] = now
            if len(seen.terminal) >= len(expected):
                all_terminal.set()

    return await bus.js.subscribe(bus.topology.events_wildcard, cb=on_message, ordered_consumer=True)


@dataclass
class Run:
    """What one pipeline run measured."""

    shape: str
    failures: int
    sender: dict[str, Any]
    seen: Milestones
    elapsed: float
    catch_up: float
    lag_samples: list[int]
    cpu: dict[str, float | None]
    """CPU seconds during the run by process: each service host, sandbox, nats-server."""
    github_requests: int
    profile_split: dict[str, float] | None = None

    def latencies(self, milestone: str, *, after: float = 0.0, before: float | None = None) -> list[float]:
        """From each POST's start to ``milestone``: an event's arrival, or ``answered`` (the
        webhook's HTTP response); of the POSTs begun ``after`` seconds from the first one (and
        before ``before``), so a steady run's warm-up can be told from its steady state."""
        if milestone == "answered":
            arrived, sent = self.sender["answered"], self.sender["sent"]  # both time.monotonic
        else:
            arrived, sent = getattr(self.seen, milestone), self.sender["sent_wall"]  # both time.time
        first = min(sent.values(), default=0.0)
        end = float("inf") if before is None else before
        return [arrived[f] - sent[f] for f in sent if f in arrived and after <= sent[f] - first < end]

    def services_cpu(self) -> float:
        return sum(v or 0.0 for k, v in self.cpu.items() if k.startswith("services:"))

    def others_cpu(self) -> float:
        """What the processes beside the services took: the sandboxes, nats-server,
        PostgreSQL and the sender, which share the machine's cores with them."""
        return sum(v or 0.0 for k, v in self.cpu.items() if not k.startswith("services:"))


def _hosts(shape: str) -> dict[str, tuple[str, ...]]:
    if shape == "one_process":
        return {"all": composition.SERVICE_NAMES}
    return {name: (name,) for name in composition.SERVICE_NAMES}


def _service_env(
    topology: Topology, nats_url: str, database_url: str, db_schema: str, github: str, model: str
) -> dict[str, str]:
    """Settings as a pod gets them: MEDIC_* variables (nothing inherited from the bench's own)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MEDIC_") and k not in {"NATS_URL", "DATABASE_URL"}
    }
    env.update(
        MEDIC_NATS_URL=nats_url,
        MEDIC_DATABASE_URL=database_url,
        MEDIC_STREAM_NAME=topology.stream,
        MEDIC_SUBJECT_PREFIX=topology.prefix,
        MEDIC_DB_SCHEMA=db_schema,
        MEDIC_GITHUB_API_URL=github,
        MEDIC_GITHUB_TOKEN="sandbox-token",
        MEDIC_GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET,
        MEDIC_MODEL_BASE_URL=f"{model}/v1",
        MEDIC_MODEL_API_KEY="sandbox",
    )
    return env


async def _start_services(
    shape: str, ports: dict[str, int], env: dict[str, str], logs: Path, processes: dict[str, Process]
) -> None:
    """Start the shape's processes into ``processes`` (so the caller stops even a half-started
    set) and wait until each answers ``/readyz``."""
    for label, names in _hosts(shape).items():
        with (logs / f"{label}.log").open("wb") as stderr:
            processes[label] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.bench.services_process",
                str(ports[label]),
                *names,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
    async with httpx.AsyncClient(timeout=5) as http:
        for label, process in processes.items():
            deadline = time.monotonic() + 300
            while True:
                if process.returncode is not None:
                    tail = (logs / f"{label}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"services {label!r} exited ({process.returncode}): {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{ports[label]}/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"services {label!r} not ready within 300 s")
                await asyncio.sleep(0.2)


async def _stop_services(processes: dict[str, Process]) -> None:
    for process in processes.values():
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            await asyncio.wait_for(process.wait(), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _start_sandbox(port: int, model_port: int, webhook_url: str, failures: int, out: Path) -> Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.github_process",
        str(port),
        str(model_port),
        webhook_url,
        str(failures),
        str(out),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), timeout=300)
    if ready.strip() != b"ready":
        raise RuntimeError(f"sandbox GitHub did not start: {ready!r}")
    return process


async def _stop_sandbox(process: Process) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    await asyncio.wait_for(process.wait(), timeout=60)
    return dict(json.loads(line))


async def _start_sender(url: str, deliveries: Path, mode: str, value: float) -> Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.sender_process",
        url,
        str(deliveries),
        mode,
        str(value),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 26,  # its report is one line: a send time for every failure
    )
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), timeout=300)
    if ready.strip() != b"ready":
        raise RuntimeError(f"webhook sender did not start: {ready!r}")
    return process


async def run_pipeline(
    nats_url: str,
    database_url: str,
    *,
    shape: str,
    failures: int,
    mode: str,
    value: float,
    nats_pid: int | None = None,
    postgres_pid: int | None = None,
    profile: bool = False,
) -> Run:
    """One run: sandbox, services in ``shape``, sender in ``mode`` (``burst`` N in flight, or
    ``steady`` at ``value`` per second), until every failure's terminal event has arrived."""
    token = uuid.uuid4().hex[:8]
    topology = Topology(stream=f"BENCH_{token}", prefix=f"bench{token}")
    ports = {label: free_port() for label in _hosts(shape)}
    monitor_url = f"http://127.0.0.1:{ports['all' if shape == 'one_process' else 'monitor']}"
    github_port, model_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="medic-pipeline-bench-") as tmp:
        deliveries_file = Path(tmp) / "deliveries.jsonl"
        profile_file = Path(tmp) / "profile.json"
        sandbox = await _start_sandbox(
            github_port, model_port, f"{monitor_url}/webhooks/github", failures, deliveries_file
        )
        expected = {
            json.loads(line)["failure_id"]
            for line in deliveries_file.read_text(encoding="utf-8").splitlines()
        }
        env = _service_env(
            topology,
            nats_url,
            database_url,
            f"bench_{token}",
            f"http://127.0.0.1:{github_port}",
            f"http://127.0.0.1:{model_port}",
        )
        if profile:
            env["BENCH_PROFILE_OUT"] = str(profile_file)
        bus = await Bus.connect(nats_url, topology)  # the streams exist before any service starts
        services: dict[str, Process] = {}
        sandbox_result: dict[str, Any] = {}
        sender: Process | None = None
        try:
            await _start_services(shape, ports, env, Path(tmp), services)
            sender = await _start_sender(f"{monitor_url}/webhooks/github", deliveries_file, mode, value)
            seen, all_terminal = Milestones(), asyncio.Event()
            subscription = await _watch(bus, expected, seen, all_terminal)
            lag_samples: list[int] = []
            sampler = asyncio.create_task(_sample_projection_lag(bus, lag_samples))
            pids: dict[str, int | None] = {f"services:{label}": p.pid for label, p in services.items()}
            pids |= {"sandbox_github_process": sandbox.pid, "nats_server": nats_pid}
            before = {name: _process_cpu(pid) for name, pid in pids.items()}
            before["postgres"] = _postgres_cpu(postgres_pid)
            if profile:
                services["all"].send_signal(signal.SIGUSR1)
            assert sender.stdin is not None and sender.stdout is not None
            began = time.time()
            sender.stdin.write(b"go\n")
            await sender.stdin.drain()
            await asyncio.wait_for(all_terminal.wait(), timeout=900)
            elapsed = max(seen.terminal.values()) - began
            after = {name: _process_cpu(pid) for name, pid in pids.items()}
            after["postgres"] = _postgres_cpu(postgres_pid)
            if profile:
                services["all"].send_signal(signal.SIGUSR2)
            sent = json.loads(await asyncio.wait_for(sender.stdout.readline(), timeout=120))
            await sender.wait()
            settled = time.monotonic()
            while await bus.pending("projector") > 0:  # noqa: ASYNC110 - polling the server's count
                await asyncio.sleep(0.05)
            catch_up = time.monotonic() - settled
            sampler.cancel()
            await subscription.unsubscribe()
            split = None
            if profile:
                for _ in range(600):
                    if profile_file.exists():
                        break
                    await asyncio.sleep(0.1)
                split = json.loads(profile_file.read_text(encoding="utf-8"))
        finally:
            if sender is not None and sender.returncode is None:  # only when the run failed
                sender.kill()
                await sender.wait()
            await _stop_services(services)
            sandbox_result = await _stop_sandbox(sandbox)
            await bus.close()
    cpu = {
        name: None if before[name] is None or after[name] is None else after[name] - before[name]  # type: ignore[operator]
        for name in before
    }
    cpu["sender_process"] = sent["cpu_s"]
    return Run(
        shape=shape,
        failures=failures,
        sender=sent,
        seen=seen,
        elapsed=elapsed,
        catch_up=catch_up,
        lag_samples=lag_samples,
        cpu=cpu,
        github_requests=int(sandbox_result.get("requests", 0)),
        profile_split=split,
    )


def _delay_p99(run: Run) -> float | None:
    delays = run.seen.watcher_delays
    return round(_percentile(delays, 0.99) * 1000, 1) if delays else None


def _rounded(cpu: dict[str, float | None]) -> dict[str, float | None]:
    return {name: None if v is None else round(v, 2) for name, v in cpu.items()}


def _ceiling(run: Run) -> float | None:
    """Failures per second all cores could carry if the services cost nothing (see the note)."""
    others = run.others_cpu()
    return round((os.cpu_count() or 1) * run.failures / others, 1) if others else None


def _suffix(shape: str) -> str:
    return "" if shape == "one_process" else f"_{shape}"


def burst_figures(run: Run, baseline: dict[str, Any]) -> list[dict[str, Any]]:
    """The burst's figures. One process keeps the figure names the bench always had; the
    per-service shape's carry ``_process_per_service`` and the one-process figure as baseline."""
    suffix, load = _suffix(run.shape), _load()
    latencies = run.latencies("terminal")
    per_failure = run.github_requests / run.failures
    errors = len(run.sender["errors"])
    return [
        {
            "figure": f"pipeline_failures_per_second{suffix}",
            "value": round(run.failures / run.elapsed, 1),
            "unit": "failures/s",
            "failures": run.failures,
            "shape": run.shape,
            "baseline": baseline.get("rate"),
            "sender_errors": errors,
            "watcher_delay_p99_ms": _delay_p99(run),
            "load_average_1m": load,
        },
        {
            "figure": f"pipeline_latency_p50{suffix}",
            "value": round(statistics.median(latencies) * 1000, 1),
            "unit": "ms",
            "from": "webhook POST",
            "to": "terminal event",
            "shape": run.shape,
            "baseline": baseline.get("latency_p50"),
            "load_average_1m": load,
        },
        {
            "figure": f"pipeline_latency_p99{suffix}",
            "value": round(_percentile(latencies, 0.99) * 1000, 1),
            "unit": "ms",
            "shape": run.shape,
            "baseline": baseline.get("latency_p99"),
            "load_average_1m": load,
        },
        {
            "figure": f"projection_lag_max{suffix}",
            "value": max(run.lag_samples, default=0),
            "unit": "events",
            "note": "most events not yet applied by the projector, sampled every 100 ms",
        },
        {
            "figure": f"github_requests_per_failure{suffix}",
            "value": round(per_failure, 2),
            "unit": "requests",
            "note": "GitHub requests the sandbox counted (monitor, analyzer, executor) per failure",
        },
        {
            "figure": f"failures_per_hour_per_token{suffix}",
            "value": int(5000 / per_failure) if per_failure else None,
            "unit": "failures/h",
            "note": "how many failures one token's 5,000 requests per hour cover at that rate",
        },
        {
            "figure": f"projection_catch_up{suffix}",
            "value": round(run.catch_up * 1000, 1),
            "unit": "ms",
            "note": "from the last terminal event until the projector had applied everything",
        },
        {
            "figure": f"pipeline_cpu_ms_per_failure{suffix}",
            "value": round(run.services_cpu() / run.failures * 1000, 2),
            "unit": "ms CPU/failure",
            "shape": run.shape,
            "cpu_s": _rounded(run.cpu),
            "others_ms_per_failure": round(run.others_cpu() / run.failures * 1000, 2),
            "ceiling_failures_per_second": _ceiling(run),
            "cores": os.cpu_count(),
            "baseline": baseline.get("cpu"),
            "load_average_1m": load,
            "note": "CPU (/proc/<pid>/stat) of the services' process(es) from the first POST to the last "
            "terminal event, per failure; beside it each process's own: the sandbox GitHub and model, "
            "nats-server, PostgreSQL (postmaster and backends), the webhook sender; the ceiling is the "
            "rate the machine's cores would allow if the services took no CPU at all and the other "
            "processes took what they took here per failure",
        },
    ]


def profile_figure(run: Run) -> dict[str, Any]:
    return {
        "figure": "pipeline_cpu_split",
        "value": cpu_split.shares(run.profile_split or {}),
        "unit": "share of sampled busy time in the services' process",
        "failures": run.failures,
        "cpu_s": _rounded(run.cpu),
        "load_average_1m": _load(),
        "note": "a separate, profiled burst, all services in one process (pyinstrument, 2 ms); a "
        "sample goes to the innermost service package on its stack; BENCH_PROFILE_TEXT=FILE writes "
        "the call tree",
    }


MILESTONES = (
    ("answered", "response", None),
    ("detected", "failure_detected", 50),
    ("gated", "gate_decided", 250),
    ("terminal", "terminal_event", None),
)
"""Each steady-rate figure: the milestone, its name, the issue's target for its p99 (ms)."""


WARM_UP_SECONDS = 2.0
"""A steady run's first seconds, reported apart: every process on the machine (the services,
the sandbox, nats-server, PostgreSQL's fresh backends) pays its first-use costs then, and its
GitHub reads and publishes took two to five times their steady time in a traced run."""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def low_rate_latencies(run: Run, rate: float) -> dict[str, Any]:
    """The same path with no backlog (a low rate), as a baseline: what one failure costs alone."""
    summary: dict[str, Any] = {
        "figure": "same path at a low rate, once warm",
        "rate": rate,
        "failures": run.failures,
        "warm_up_seconds": WARM_UP_SECONDS,
    }
    for milestone, name, _ in MILESTONES:
        latencies = run.latencies(milestone, after=WARM_UP_SECONDS)
        whole = run.latencies(milestone)
        if latencies:
            summary[name] = {
                "p50": _ms(statistics.median(latencies)),
                "p99": _ms(_percentile(latencies, 0.99)),
                "measured": len(latencies),
                "whole_run": {"p50": _ms(statistics.median(whole)), "p99": _ms(_percentile(whole, 0.99))},
            }
    summary["completed_rate"] = round(run.failures / run.elapsed, 2)
    return summary


def steady_figures(
    run: Run,
    rate: float,
    floor: dict[str, Any],
    low_rate: dict[str, Any] | None = None,
    *,
    warm_up_seconds: float = WARM_UP_SECONDS,
) -> list[dict[str, Any]]:
    """Latency at a steady rate once warm (the POSTs after ``warm_up_seconds``), with the
    warm-up's own and the whole run's percentiles beside it, against raw JetStream
    publish-to-arrival at the same rate and, when measured, the same path at a low rate."""
    suffix, load = _suffix(run.shape), _load()
    figures: list[dict[str, Any]] = []
    for milestone, name, target in MILESTONES:
        latencies = run.latencies(milestone, after=warm_up_seconds)
        warming = run.latencies(milestone, before=warm_up_seconds)
        whole = run.latencies(milestone)
        baseline = {"raw_jetstream": floor}
        if low_rate is not None and name in low_rate:
            baseline["same_path_at_low_rate"] = {
                "rate": low_rate["rate"],
                "failures": low_rate["failures"],
                **low_rate[name],
            }
        figures.append(
            {
                "figure": f"steady_webhook_to_{name}_p99{suffix}",
                "value": round(_percentile(latencies, 0.99) * 1000, 1) if latencies else None,
                "p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
                "unit": "ms",
                "target_p99": target,
                "rate": rate,
                "failures": run.failures,
                "arrived": len(whole),
                "measured": len(latencies),
                "warm_up": {
                    "seconds": warm_up_seconds,
                    "failures": len(warming),
                    "p50": _ms(statistics.median(warming)) if warming else None,
                    "p99": _ms(_percentile(warming, 0.99)) if warming else None,
                },
                "whole_run": {
                    "failures": len(whole),
                    "p50": _ms(statistics.median(whole)) if whole else None,
                    "p99": _ms(_percentile(whole, 0.99)) if whole else None,
                },
                "shape": run.shape,
                "baseline": baseline,
                "load_average_1m": load,
            }
        )
    sender = run.sender
    figures.append(
        {
            "figure": f"steady_send_rate{suffix}",
            "value": None if sender["achieved_rate"] is None else round(sender["achieved_rate"], 2),
            "unit": "webhooks/s",
            "baseline": {"figure": "scheduled rate", "value": rate, "unit": "webhooks/s"},
            "lateness_p99_ms": round(sender["lateness_p99_s"] * 1000, 1),
            "lateness_max_ms": round(sender["lateness_max_s"] * 1000, 1),
            "sender_errors": len(sender["errors"]),
            "sender_cpu_s": round(sender["cpu_s"], 2),
            "services_cpu_ms_per_failure": round(run.services_cpu() / run.failures * 1000, 2),
            "completed_rate": round(run.failures / run.elapsed, 2),
            "watcher_delay_p99_ms": _delay_p99(run),
            "shape": run.shape,
            "load_average_1m": load,
            "note": "open loop: the sender posts on a fixed schedule, never waiting for a response; "
            "lateness is how far behind its schedule it started a POST; completed_rate is failures / "
            "(last terminal event - first POST): below the send rate, a backlog grew and the latencies "
            "above grow with the run's length",
        }
    )
    return figures


async def _sample_projection_lag(bus: Bus, samples: list[int]) -> None:
    while True:
        with contextlib.suppress(Exception):
            samples.append(await bus.pending("projector"))
        await asyncio.sleep(0.1)


async def raw_jetstream_latency(nats_url: str, *, rate: float, messages: int, size: int) -> dict[str, Any]:
    """Publish at ``rate`` on a fixed schedule; from each publish to the time JetStream stored
    the message (read on an ordered consumer, as the pipeline's events are): the bus's own
    latency, the floor under any event the services publish."""
    token = uuid.uuid4().hex[:8]
    topology = Topology(stream=f"RAWLAT_{token}", prefix=f"rawlat{token}")
    bus = await Bus.connect(nats_url, topology)
    subject = topology.subject(EVENT_TYPE_NAMES[0])
    sent: dict[int, float] = {}
    arrived: dict[int, float] = {}
    done = asyncio.Event()

    async def on_message(msg: Any) -> None:
        arrived[int(msg.headers["n"])] = msg.metadata.timestamp.timestamp()
        if len(arrived) >= messages:
            done.set()

    body = json.dumps({"pad": "x" * size}).encode()
    try:
        sub = await bus.js.subscribe(subject, cb=on_message, ordered_consumer=True)

        async def one(n: int) -> None:
            sent[n] = time.time()
            await bus.js.publish(subject, body, stream=topology.stream, headers={"n": str(n)})

        start = time.monotonic() + 0.01
        tasks = []
        for n in range(messages):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(done.wait(), timeout=60)
        await sub.unsubscribe()
    finally:
        await bus.js.delete_stream(topology.stream)
        await bus.js.delete_stream(topology.dlq_stream)
        await bus.close()
    latencies = [arrived[n] - sent[n] for n in sent]
    return {
        "figure": "raw_jetstream_publish_to_stored",
        "p50": round(statistics.median(latencies) * 1000, 2),
        "p99": round(_percentile(latencies, 0.99) * 1000, 2),
        "unit": "ms",
        "rate": rate,
        "messages": messages,
        "bytes": len(body),
    }


async def raw_jetstream_figures(nats_url: str, *, messages: int, size: int) -> list[dict[str, Any]]:
    token = uuid.uuid4().hex[:8]
    topology = Topology(stream=f"RAW_{token}", prefix=f"raw{token}")
    bus = await Bus.connect(nats_url, topology)
    subject = topology.subject(EVENT_TYPE_NAMES[0])
    body = json.dumps({"pad": "x" * size}).encode()
    try:
        began = time.perf_counter()
        gate = asyncio.Semaphore(256)  # acks pipelined, as Bus.publish_many does

        async def one() -> None:
            async with gate:
                await bus.js.publish(subject, body, stream=topology.stream)

        await asyncio.gather(*(one() for _ in range(messages)))
        published = time.perf_counter() - began
        psub = await bus.js.pull_subscribe(subject, durable="raw", stream=topology.stream)
        began = time.perf_counter()
        consumed = 0
        while consumed < messages:
            batch = await psub.fetch(min(256, messages - consumed), timeout=5)
            for msg in batch:
                await msg.ack()
            consumed += len(batch)
        consumed_s = time.perf_counter() - began
    finally:
        await bus.js.delete_stream(topology.stream)
        await bus.js.delete_stream(topology.dlq_stream)
        await bus.close()
    return [
        {
            "figure": "raw_jetstream_publish_rate",
            "value": round(messages / published),
            "unit": "msg/s",
            "messages": messages,
            "bytes": len(body),
        },
        {
            "figure": "raw_jetstream_consume_rate",
            "value": round(messages / consumed_s),
            "unit": "msg/s",
            "messages": messages,
        },
    ]
