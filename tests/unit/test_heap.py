"""Freezing start-up's heap: what it built leaves the collector's generations, and stays alive."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_freeze_moves_live_objects_out_of_the_collectors_reach_and_collects_garbage_first() -> None:
    # in a child process: freezing the test process would keep its later cyclic garbage forever
    script = textwrap.dedent(
        """
        import gc
        import weakref
        from medic.heap import freeze_start_up

        class Node:
            pass

        kept = [[n] for n in range(50_000)]
        garbage = Node(); garbage.me = garbage; gone = weakref.ref(garbage); del garbage
        count = freeze_start_up()
        tracked = {id(o) for o in gc.get_objects()}
        print(count >= 50_000, any(id(o) in tracked for o in kept), gone() is None, len(kept[-1]))
        """
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["True", "False", "True", "1"]
