"""Progress of a sweep on stderr: runs done / total, skipped, failed, ETA, and the current run's
stage, step / max_steps, best dev UAR so far and the budget time left.

A terminal gets a live tqdm bar; anything else (a log file, CI) gets a plain line at most every
``$SERBENCH_PROGRESS_SECONDS`` seconds (default 30) and after every finished run. ``--json`` and
``--quiet`` show nothing.

The training loop reports each optimiser step through :func:`step`, which does nothing unless a
display is listening in this process (worker processes of ``--workers N`` have none, so their
sweep shows finished runs only).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, TextIO

DEFAULT_SECONDS = 30.0
TTY_SECONDS = 0.2  # a live bar redraws at most this often
_LISTENER: Callable[[StepInfo], None] | None = None


@dataclass(frozen=True)
class StepInfo:
    stage: str
    step: int
    max_steps: int
    best_dev_uar: float | None
    seconds_left: float


def step(stage: str, step: int, max_steps: int, best_dev_uar: float | None,
         seconds_left: float) -> None:
    """Called by the training loop after every optimiser step (cheap when nobody listens)."""
    if _LISTENER is not None:
        _LISTENER(StepInfo(stage, step, max_steps, best_dev_uar,
                           max(0.0, seconds_left)))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class SweepProgress:
    """The display of one ``serbench run``: feed it outcomes (``report``) and training steps."""

    def __init__(self, runs: Sequence[tuple[str, str]], sequential: bool = True,
                 stream: TextIO | None = None, interval: float | None = None) -> None:
        """``runs``: (run id, label) of every planned run, in the order they execute;
        ``sequential``: one at a time in this process, so the current run is known."""
        self.stream = stream or sys.stderr
        self.runs = list(runs)
        self.sequential = sequential
        self.total = len(self.runs)
        self.done = self.skipped = self.failed = 0
        self.ran = 0  # finished by training, not skipped: the ETA's sample
        self.ran_seconds = 0.0
        self.run_started = time.monotonic()
        self.first_step = (0, self.run_started)  # (step, when) of the current run's first step
        self.last_line = float("-inf")  # the first step shows at once
        self.current: tuple[str, StepInfo | None] | None = self._next(0)
        self.interval = interval if interval is not None else float(
            os.environ.get("SERBENCH_PROGRESS_SECONDS", DEFAULT_SECONDS))
        self.bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="run", file=self.stream, dynamic_ncols=True,
                            desc="serbench", leave=False)

    def _next(self, index: int) -> tuple[str, StepInfo | None] | None:
        if not self.sequential or index >= self.total:
            return None
        return (self.runs[index][1], None)

    def __enter__(self) -> SweepProgress:
        global _LISTENER
        _LISTENER = self.on_step
        return self

    def __exit__(self, *exc: Any) -> None:
        global _LISTENER
        _LISTENER = None
        if self.bar is not None:
            self.bar.close()

    def eta(self) -> str:
        """The current run's rest (from its step rate) plus the mean duration of the runs done
        times the runs after it; ``?`` until there is a rate to go by."""
        left = self.total - self.done
        if not left:
            return _clock(0)
        now = time.monotonic()
        elapsed = now - self.run_started
        info = self.current[1] if self.current else None
        mean = self.ran_seconds / self.ran if self.ran else None
        if info is not None and info.step > self.first_step[0]:  # a step rate, set-up excluded
            rate = (now - self.first_step[1]) / (info.step - self.first_step[0])
            current = rate * max(0, info.max_steps - info.step)
        elif mean is not None:
            current = max(0.0, mean - elapsed)
        else:
            return "?"
        if mean is None:
            mean = elapsed + current  # the current run's own estimate
        return _clock(current + mean * (left - 1))

    def sweep_text(self) -> str:
        return f"{self.done}/{self.total} runs done, {self.skipped} skipped, {self.failed} failed"

    def run_text(self) -> str:
        if self.current is None:
            return ""
        label, info = self.current
        if info is None:
            return f"{label}: preparing"
        uar = "–" if info.best_dev_uar is None else f"{info.best_dev_uar:.3f}"
        return (f"{label}: {info.stage} step {info.step}/{info.max_steps}, best dev UAR {uar}, "
                f"{info.seconds_left:.0f} s of budget left")

    def text(self) -> str:
        run = self.run_text()
        return f"{self.sweep_text()}, ETA {self.eta()}" + (f" | {run}" if run else "")

    def report(self, out: Mapping[str, Any]) -> None:
        """One finished (or skipped) run's outcome, as the executor reports it."""
        now = time.monotonic()
        self.done += 1
        if out["status"] == "skipped":
            self.skipped += 1
        else:
            self.ran += 1
            self.ran_seconds += now - self.run_started
            self.failed += out["status"] == "failed"
        self.run_started = now
        self.current = self._next(self.done)
        self._show(force=out["status"] != "skipped")

    def on_step(self, info: StepInfo) -> None:
        if self.current is not None:
            if self.current[1] is None:  # the run's first step: its rate counts from here
                self.first_step = (info.step, time.monotonic())
            self.current = (self.current[0], info)
        self._show(force=False)

    def _show(self, force: bool) -> None:
        now = time.monotonic()
        every = self.interval if self.bar is None else TTY_SECONDS
        if not force and now - self.last_line < every:
            return
        self.last_line = now
        if self.bar is not None:  # tqdm draws the count and its own ETA
            self.bar.n = self.done
            self.bar.set_postfix_str(f"{self.skipped} skipped, {self.failed} failed | "
                                     f"{self.run_text()}", refresh=True)
        else:
            print(f"serbench: progress: {self.text()}", file=self.stream, flush=True)
