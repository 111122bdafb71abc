"""A fix for Snakemake's scheduler loop, applied by the workflow at parse time.

The problem (Snakemake 9.27, ``snakemake.scheduling.job_scheduler.JobScheduler``): with the job
rate limiter on (``--max-jobs-per-timespan``, default ``100/1s``), every pass of the scheduling
loop that finds jobs ready ends by starting a one-second ``threading.Timer`` that wakes the loop
again, and every finished job wakes it too. Each wake-up therefore leaves one more timer behind
while jobs wait for free cores: after n job completions the loop runs about n times a second,
each pass re-evaluating the params and input sizes of every waiting job and solving the job
selection. On the science-scale demo (2 cores, ~3,000 jobs) this was measured at 55 % of one core
for Snakemake's own process, with more than 30,000 timer threads started.

The fix keeps at most one re-evaluation timer pending: a re-evaluation is still due ``delay``
seconds after the first request (what the rate limiter needs), but requests that arrive while one
is pending do not add another. The timer is a daemon thread, so the process never waits for it at
exit. Nothing else of the scheduler changes.

It is applied only where the method it replaces exists with the expected signature; otherwise
:func:`apply` does nothing and says why in its return value.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

_ATTRIBUTE = "_oncoflow_reevaluation"


def single_reevaluation(self: Any, delay: float) -> None:
    """Wake the scheduling loop once after ``delay`` seconds unless a wake-up is already pending.

    Args:
        self: The ``JobScheduler`` (it owns the ``_open_jobs`` semaphore the loop waits on).
        delay: Seconds until the loop re-evaluates the ready jobs.
    """
    pending = getattr(self, _ATTRIBUTE, None)
    if pending is not None and pending.is_alive():
        return
    timer = threading.Timer(delay, self._open_jobs.release)
    timer.daemon = True
    setattr(self, _ATTRIBUTE, timer)
    timer.start()


def apply() -> str:
    """Install :func:`single_reevaluation` on Snakemake's ``JobScheduler``.

    Returns:
        ``"applied"``, ``"already applied"`` or why it was not applied.
    """
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError as exc:  # another Snakemake layout: leave it alone
        return f"not applied: {exc}"
    current = getattr(JobScheduler, "_schedule_reevalutation", None)
    if current is single_reevaluation:
        return "already applied"
    if current is None or list(inspect.signature(current).parameters) != ["self", "delay"]:
        return "not applied: JobScheduler._schedule_reevalutation(self, delay) not found"
    JobScheduler._schedule_reevalutation = single_reevaluation
    return "applied"
