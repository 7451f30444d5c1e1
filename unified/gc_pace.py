"""How often the cyclic garbage collector runs while worker pools run in this process.

Every task allocates a few hundred container objects (records, specs, contexts, outcomes), so at CPython's
default (a young-generation pass every 700 net allocations, and every tenth of those a pass over the middle one)
the collector runs several times per task, with every thread of the process stopped: measured at 10-22% of the
wall time of W1, W3 and W4 (docs/performance-history.md). Reference counting frees almost all of it; the collector only
finds cycles, which it still does, less often. So while at least one pool runs, the youngest generation's threshold
is raised to ``config.gc_threshold()`` (10,000 unless ``UNIFIED_GC_THRESHOLD`` says otherwise; 0 leaves the
collector alone); when the last pool stops, the program's own threshold comes back, unless it set another since.
A program that already runs with a threshold at least that high, or with 0 (no automatic collection), is left as
it is.
"""

from __future__ import annotations

import gc
import threading

from unified.config import gc_threshold

_lock = threading.Lock()
_holders = 0
_restore: tuple[int, int, int] | None = None  # the thresholds before the raise; None: not raised
_raised = 0


def hold() -> None:
    """A pool starts: raise the young generation's threshold if this is the first and the program's is lower."""
    global _holders, _restore, _raised
    wanted = gc_threshold()  # read first: a bad setting raises before anything is counted
    with _lock:
        _holders += 1
        current = gc.get_threshold()
        if _holders == 1 and wanted > current[0] > 0:  # 0: the program turned automatic collection off
            _restore, _raised = current, wanted
            gc.set_threshold(wanted, *current[1:])


def release() -> None:
    """A pool stopped: the last one puts back the thresholds it found (unless the program changed them since)."""
    global _holders, _restore
    with _lock:
        _holders = max(0, _holders - 1)
        if _holders == 0 and _restore is not None:
            if gc.get_threshold()[0] == _raised:
                gc.set_threshold(*_restore)
            _restore = None
