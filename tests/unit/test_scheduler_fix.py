"""oncoflow.scheduler_fix: one pending re-evaluation at a time, daemon, installed on Snakemake."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from oncoflow import scheduler_fix


def test_requests_while_one_is_pending_add_no_timer():
    scheduler = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    before = threading.active_count()
    for _ in range(50):
        scheduler_fix.single_reevaluation(scheduler, 0.2)
    assert threading.active_count() - before == 1
    assert scheduler._oncoflow_reevaluation.daemon
    assert scheduler._open_jobs.acquire(timeout=2.0)  # the loop is woken once ...
    time.sleep(0.3)
    assert not scheduler._open_jobs.acquire(blocking=False)  # ... and only once
    scheduler_fix.single_reevaluation(scheduler, 0.05)  # a new request after it fired
    assert scheduler._open_jobs.acquire(timeout=2.0)


def test_installed_on_snakemakes_scheduler():
    from snakemake.scheduling.job_scheduler import JobScheduler

    assert scheduler_fix.apply() in ("applied", "already applied")
    assert JobScheduler._schedule_reevalutation is scheduler_fix.single_reevaluation
    assert scheduler_fix.apply() == "already applied"
