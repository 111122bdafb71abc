"""oncoflow.progress: bounded rate, a linear estimate of what is left, resume-aware."""

from __future__ import annotations

import logging

from oncoflow.progress import Progress


def test_lines_are_rate_bounded_and_the_last_unit_always_logs(caplog):
    caplog.set_level(logging.INFO, logger="oncoflow.progress")
    progress = Progress(100, "epoch", every_s=3600.0)
    logged = [progress.update(done) for done in range(1, 101)]
    assert logged[0] is True  # the first line comes at once
    assert logged[1:99] == [False] * 98
    assert logged[99] is True
    assert "epoch 100/100 (100 %)" in caplog.messages[-1]
    assert "left" not in caplog.messages[-1]


def test_estimate_is_linear_in_the_units_this_process_ran(caplog, monkeypatch):
    clock = iter([0.0, 10.0])
    monkeypatch.setattr("oncoflow.progress.time.perf_counter", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="oncoflow.progress")
    progress = Progress(30, "step", every_s=0.0, first=10)  # resumed after 10 of 30
    progress.update(15, "loss 0.5")
    assert caplog.messages == ["step 15/30 (50 %), 10 s elapsed, ~30 s left; loss 0.5"]
