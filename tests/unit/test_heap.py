"""The startup heap is frozen out of the collector's full collections; later garbage is not.

Run in a child interpreter: freezing the test runner's own heap would keep every cycle the
later tests leave behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import gc, json, weakref

    from boxoffice_telemetry.heap import freeze_startup_heap
    from prometheus_client import REGISTRY


    class Node:
        def __init__(self) -> None:
            self.me = self  # a reference cycle: only the collector frees it


    kept = Node()              # lives on: part of the startup heap
    left_over = Node()         # garbage startup left behind
    left_over_ref = weakref.ref(left_over)
    del left_over
    gc.disable()               # no automatic collection gets ahead of the freeze
    before = len(gc.get_objects(generation=2))
    frozen = freeze_startup_heap()
    after_freeze = len(gc.get_objects(generation=2))
    later = Node()             # made after the freeze: collected as before
    later_ref = weakref.ref(later)
    del later
    gc.collect()
    print(json.dumps({
        "frozen": frozen,
        "freeze_count": gc.get_freeze_count(),
        "gauge": REGISTRY.get_sample_value("boxoffice_gc_frozen_objects"),
        "before": before,
        "after_freeze": after_freeze,
        "kept_walked": any(o is kept for o in gc.get_objects()),
        "left_over_freed": left_over_ref() is None,
        "later_freed": later_ref() is None,
    }))
    """
)


def test_the_startup_heap_is_frozen_and_later_garbage_is_still_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    # Everything the process held is frozen, and the gauge says how much (frozen objects
    # freed by their reference count since leave the count).
    assert found["gauge"] == found["frozen"]
    assert found["frozen"] - 100 < found["freeze_count"] <= found["frozen"]
    assert found["frozen"] > 10_000, found  # the imports alone: modules, classes, functions
    # A full collection no longer walks them: the oldest generation is (nearly) empty.
    assert found["before"] > 10_000, found
    assert found["after_freeze"] < 100, found
    assert not found["kept_walked"]
    # The garbage startup left was collected first, not frozen for good ...
    assert found["left_over_freed"]
    # ... and what the process makes later is collected as before.
    assert found["later_freed"]
