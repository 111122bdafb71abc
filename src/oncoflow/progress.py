"""Progress lines of long jobs at a bounded rate: done / total, elapsed, an estimate of time left.

``Progress(total, "label").update(done)`` logs ``label 12/50 (24 %), 31 s elapsed, ~98 s left``
at most every ``every_s`` seconds (and always for the last unit). The estimate is linear:
``left = elapsed / (done - first) x (total - done)``, where ``first`` is where this process started
(a resumed run does not count the units it skipped). Used by the batch runner, model training
(epochs), the DDPM (steps) and WSI tiling.
"""

from __future__ import annotations

import logging
import time


class Progress:
    """Rate-bounded progress logging of a loop over ``total`` units (module docstring).

    Args:
        total: Number of units (epochs, steps, patients).
        label: What the line starts with, e.g. ``"relation_net fold 0: epoch"``.
        logger: Where lines go (default: the ``oncoflow.progress`` logger).
        every_s: Least seconds between two lines.
        first: Units already done before this process started (resume).
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        logger: logging.Logger | None = None,
        every_s: float = 10.0,
        first: int = 0,
    ) -> None:
        self.total, self.label, self.every_s, self.first = total, label, every_s, first
        self.log = logger or logging.getLogger("oncoflow.progress")
        self.start = time.perf_counter()
        self.last = -float("inf")

    def update(self, done: int, detail: str = "", *, force: bool = False) -> bool:
        """Log the line for ``done`` units if ``every_s`` has passed (or ``force``, or the end).

        Returns:
            True when a line was logged.
        """
        now = time.perf_counter()
        if not (force or done >= self.total or now - self.last >= self.every_s):
            return False
        self.last = now
        elapsed = now - self.start
        ran = done - self.first
        left = elapsed / ran * (self.total - done) if ran > 0 else float("nan")
        share = 100.0 * done / self.total if self.total else 100.0
        text = f"{self.label} {done}/{self.total} ({share:.0f} %), {elapsed:.0f} s elapsed"
        if done < self.total and ran > 0:
            text += f", ~{left:.0f} s left"
        self.log.info("%s%s", text, f"; {detail}" if detail else "")
        return True
