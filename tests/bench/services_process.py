"""Services for the pipeline bench, in a process of their own: all of them, or one.

The bench measures two deployment shapes with the same code: every service in one process
(as ``medic run`` hosts them) and each service in its own process (as ``medic service NAME``
runs a Kubernetes pod). Both go through what those commands go through,
:func:`medic.services.composition.open_parts` and ``build_host(...).serve``, with settings
from the environment (``MEDIC_*``), as a pod gets them. This module rather than ``medic
service`` itself so that both shapes log at the same level (WARNING, as the bench always
has) and so that the one-process shape can be profiled: the operating system tells each
process's CPU (``/proc/<pid>/stat``) but not which service inside one process used it.

With ``BENCH_PROFILE_OUT=FILE`` SIGUSR1 starts a pyinstrument profile and SIGUSR2 stops it
and writes its split by service (:mod:`tests.bench.cpu_split`) to FILE as JSON (and the
call tree to ``BENCH_PROFILE_TEXT`` when set). SIGTERM drains and stops, as in a pod.

    python -m tests.bench.services_process PORT NAME [NAME ...]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from medic.config import load_settings
from medic.services import composition
from medic.telemetry import configure


class _Profiling:
    """pyinstrument started and stopped by signals, so only the measured burst is sampled."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.profiler: Any = None

    def start(self) -> None:
        from pyinstrument import Profiler

        self.profiler = Profiler(interval=0.002, async_mode="disabled")
        self.profiler.start()

    def stop(self) -> None:
        from tests.bench import cpu_split

        if self.profiler is None:
            return
        self.profiler.stop()
        text_file = os.environ.get("BENCH_PROFILE_TEXT")
        if text_file:
            Path(text_file).write_text(self.profiler.output_text(show_all=False), encoding="utf-8")
        totals = cpu_split.split(self.profiler.last_session)
        self.out.write_text(json.dumps(totals), encoding="utf-8")
        self.profiler = None


async def serve(port: int, names: tuple[str, ...]) -> None:
    settings = load_settings(http_port=port)
    loop = asyncio.get_running_loop()
    if os.environ.get("BENCH_PROFILE_OUT"):
        profiling = _Profiling(Path(os.environ["BENCH_PROFILE_OUT"]))
        loop.add_signal_handler(signal.SIGUSR1, profiling.start)
        loop.add_signal_handler(signal.SIGUSR2, profiling.stop)
    async with composition.open_parts(settings) as parts:
        host = composition.build_host(settings, parts, names, {})
        await host.serve(host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    configure(f"ci-medic-bench-{'+'.join(sys.argv[2:])}", level="WARNING")
    asyncio.run(serve(int(sys.argv[1]), tuple(sys.argv[2:])))
