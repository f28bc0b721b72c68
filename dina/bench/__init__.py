"""Micro-benchmarks that compare dina's components with reference implementations."""

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """One warm-up call (allocator, thread pool, lazily built tables), then the median of `repeats` timed calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def goal(value: float | None, target: float, *, higher_is_better: bool) -> dict[str, Any]:
    """A measured figure beside the issue's goal, and whether it is met (None when not measured)."""
    met = None if value is None else bool(value >= target if higher_is_better else value <= target)
    return {"value": value, "goal": target, "better": "higher" if higher_is_better else "lower", "met": met}
