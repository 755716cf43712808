"""The budgeted training loop every method runs in.

The harness, not the method, owns the loop: it counts optimiser steps, audio seconds and device
seconds, stops at the first limit, evaluates on dev every ``eval_every`` steps, keeps the best dev
checkpoint and restores it. A method cannot spend more than its budget: its batches come from a
metered feed, and in the main thread an interval timer interrupts a step that runs past the
remaining device seconds.

Everything a run does on its device counts against ``max_device_seconds``: building the model
(the runner meters it and passes it as ``spent``), loading each batch, every step, preparation
steps, every dev evaluation, the last one, and the test prediction. The loop keeps back enough
for the closing work (the last dev evaluation and the test prediction, estimated from the
measured seconds per utterance) and stops a step early rather than overrun: that prediction is
also what makes the limit hold under torchrun, where no timer may interrupt one rank alone.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

from serbench.data.feeds import Feed
from serbench.run.progress import step as show_step
from serbench.specs import Batch, Budget, ConfigError, Stage


class BudgetExhausted(Exception):
    """Raised inside a step or a preparation when a limit is reached."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Usage:
    """What a run spent; stored in ``run.json`` under ``usage``."""

    steps: int = 0
    audio_seconds: float = 0.0
    device_seconds: float = 0.0
    peak_memory_mb: float = 0.0
    stopped_by: str = ""
    best_step: int = 0
    best_dev_uar: float | None = None
    evaluations: int = 0
    build_seconds: float = 0.0
    eval_seconds: float = 0.0  # every dev evaluation, the last one included
    predict_seconds: float = 0.0  # the test prediction (the runner adds it)
    stages: list[dict[str, Any]] = field(default_factory=list)
    group: dict[str, Any] | None = None  # trained in a group of runs (serbench.run.grouped)

    def as_dict(self) -> dict[str, Any]:
        shared = {} if self.group is None else {"group": self.group}
        return {
            "steps": self.steps,
            "audio_seconds": round(self.audio_seconds, 3),
            "device_seconds": round(self.device_seconds, 3),
            "peak_memory_mb": round(self.peak_memory_mb, 1),
            "stopped_by": self.stopped_by,
            "best_step": self.best_step,
            "best_dev_uar": self.best_dev_uar,
            "evaluations": self.evaluations,
            "build_seconds": round(self.build_seconds, 3),
            "eval_seconds": round(self.eval_seconds, 3),
            "predict_seconds": round(self.predict_seconds, 3),
            "stages": self.stages,
            **shared,
        }


_ARMED: list[Any] = [None]  # the clock whose step the alarm may interrupt


def _on_alarm(signum: int, frame: Any) -> None:
    clock = _ARMED[0]
    if clock is not None and clock._armed:
        clock._armed = False
        raise BudgetExhausted("max_device_seconds")


def _install_alarm() -> None:
    """One SIGALRM handler for the process, installed once and never swapped per step: swapping
    it back while an alarm is pending would hand Python a non-callable handler."""
    if signal.getsignal(signal.SIGALRM) is not _on_alarm:
        signal.signal(signal.SIGALRM, _on_alarm)


class _Clock:
    """Device seconds of one stage, with a hard stop through SIGALRM in the main thread.

    ``share(seconds)`` (distributed runs) turns this rank's seconds into the total over all
    ranks; every rank then sees the same ``used`` and stops at the same step, so the timer that
    would interrupt one rank alone mid-step is off and ``affordable`` alone keeps the limit.
    ``reserve`` is held back for the closing work after the stage.
    """

    def __init__(self, limit: float, device: Any,
                 share: Callable[[float], float] | None = None) -> None:
        self.limit = limit
        self.used = 0.0
        self.reserve = 0.0
        self.device = device
        self._share = share
        self._armed = False
        self._start = 0.0
        self._timer = share is None and (
            threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
        )

    def _sync(self) -> None:
        if getattr(self.device, "type", "cpu") == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def spent(self) -> float:
        """Seconds used so far, the metered block still running included (every rank agrees)."""
        if not self._armed:
            return self.used
        elapsed = time.perf_counter() - self._start
        return self.used + (self._share(elapsed) if self._share else elapsed)

    def affordable(self, cost: float) -> bool:
        """Whether a block expected to take ``cost`` seconds fits before the reserve."""
        return self.used + cost + self.reserve <= self.limit

    @contextlib.contextmanager
    def metered(self, interruptible: bool = True) -> Iterator[None]:
        remaining = self.limit - self.used - (self.reserve if interruptible else 0.0)
        if interruptible and remaining <= 0:
            raise BudgetExhausted("max_device_seconds")
        timer = self._timer and interruptible
        if timer:
            _install_alarm()
            _ARMED[0] = self
            signal.setitimer(signal.ITIMER_REAL, remaining + 0.05)
        self._armed = True
        self._start = time.perf_counter()
        try:
            yield
            self._sync()
        finally:
            self._armed = False
            if timer:
                signal.setitimer(signal.ITIMER_REAL, 0)
                _ARMED[0] = None
            elapsed = time.perf_counter() - self._start
            self.used += self._share(elapsed) if self._share else elapsed


@contextlib.contextmanager
def measured(device: Any, share: Callable[[float], float] | None = None) -> Iterator[_Clock]:
    """Time a block that must finish (building the model, the test prediction): the clock's
    ``used`` holds its device seconds (summed over ranks with ``share``) once the block ends."""
    clock = _Clock(math.inf, device, share)
    with clock.metered(interruptible=False):
        yield clock


class MeteredData:
    """Training batches for a stage's preparation step (e.g. clustering), counted as device time."""

    def __init__(self, feed: Feed, clock: _Clock, usage: Usage, seed: int) -> None:
        self._feed, self._clock, self._usage, self._seed = feed, clock, usage, seed

    def train_batches(self, epochs: int = 1) -> Iterator[Batch]:
        """Each training batch ``epochs`` times over (in the loop's order), while time remains."""
        it = self._feed.train(self._seed)
        n = getattr(self._feed, "batches_per_epoch", None)
        total = None if n is None else n * epochs
        taken = 0
        while total is None or taken < total:
            if self._clock.spent() >= self._clock.limit:
                raise BudgetExhausted("max_device_seconds")
            batch = next(it)
            taken += 1
            yield batch

    def batches(self, split: str) -> Iterator[Batch]:
        """Every batch of ``split`` (``train`` or ``dev``, never ``test``) once, in evaluation
        order, while time remains: for a preparation that needs a whole split, such as a convex
        fit that picks its regularisation on dev."""
        if split not in ("train", "dev"):
            raise ValueError(f"a preparation step reads train or dev, not {split!r}")
        for batch in self._feed.evaluate(split):
            if self._clock.used >= self._clock.limit:
                raise BudgetExhausted("max_device_seconds")
            yield batch


def _peak_memory_mb(device: Any) -> float:
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _autocast(budget: Budget, device: Any) -> contextlib.AbstractContextManager[Any]:
    import torch

    if budget.precision == "bf16" and getattr(device, "type", "cpu") == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def adamw(groups: Sequence[dict[str, Any]]) -> Any:
    """AdamW without weight decay over parameter groups (``{"params": [...], "lr": ...}``).

    Fused (one kernel for every parameter) where torch has that for the parameters' device and
    dtype: the same update rule, and on a small head most of a step's time saved.
    """
    import torch

    try:
        return torch.optim.AdamW(list(groups), weight_decay=0.0, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
        return torch.optim.AdamW(list(groups), weight_decay=0.0)


def make_optimizer(model: Any, lr: float) -> Any:
    custom = getattr(model, "configure_optimizer", None)
    if custom is not None:
        return custom()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the method's model has no trainable parameters")
    return adamw([{"params": params, "lr": lr}])


def predict(model: Any, batches: Iterator[Batch], device: Any, budget: Budget) -> tuple[
    list[str], list[int], Any
]:
    """Keys, true label indices and a (N, C) score array over the batches, in order."""
    import numpy as np
    import torch

    model.eval()
    keys: list[str] = []
    labels: list[int] = []
    scores: list[Any] = []
    with torch.inference_mode(), _autocast(budget, device):
        for batch in batches:
            out = model.predict(batch.to(device))
            keys.extend(batch.keys)
            labels.extend(int(x) for x in batch.labels.tolist())
            scores.append(out.float().cpu().numpy())
    return keys, labels, (np.concatenate(scores) if scores else np.zeros((0, 0)))


def check_loss(loss: Any, step: int, stage: str) -> None:
    """A loss that is not a finite number fails the run, naming the step and the fix."""
    value = loss.item()
    if not math.isfinite(value):
        raise ConfigError(f"the loss became {value} at step {step} (stage {stage}); lower lr")


def _dev_uar(model: Any, feed: Feed, device: Any, budget: Budget,
             labels: Sequence[str]) -> tuple[float, int]:
    """Dev UAR and the number of dev utterances predicted."""
    from serbench.judge.metrics import compute_metrics

    _, y, s = predict(model, feed.evaluate("dev"), device, budget)
    if len(y) == 0:
        return 0.0, 0
    return float(compute_metrics(y, s.argmax(1).tolist(), labels)["uar"]), len(y)


def _snapshot(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def allocate(budget: Budget, stages: Sequence[Stage]) -> list[tuple[Stage, int, float]]:
    """Steps and device seconds of each stage: shares of one budget, never more than the whole."""
    total = sum(s.share for s in stages)
    if abs(total - 1.0) > 1e-6 or any(s.share <= 0 for s in stages):
        raise ConfigError(f"stage shares must be positive and sum to 1, got "
                          f"{[(s.name, s.share) for s in stages]}")
    out, steps_left, secs_left = [], budget.max_steps, budget.max_device_seconds
    for i, stage in enumerate(stages):
        last = i == len(stages) - 1
        steps = steps_left if last else min(steps_left, int(budget.max_steps * stage.share))
        secs = secs_left if last else budget.max_device_seconds * stage.share
        out.append((stage, steps, secs))
        steps_left -= steps
        secs_left -= secs
    return out


class _Closing:
    """The device seconds the closing work will need: ``items`` utterances predicted after the
    loop, at the seconds per utterance of the last dev evaluation or, before one, a third of a
    training step's (a prediction is one forward pass; a step a forward, a backward and an
    update)."""

    def __init__(self, items: int) -> None:
        self.items = items
        self.per_item = 0.0
        self._from_eval = False

    def seconds(self) -> float:
        return self.per_item * self.items

    def saw(self, seconds: float, items: int, evaluation: bool) -> None:
        if items and (evaluation or not self._from_eval):
            self.per_item = seconds / items / (1 if evaluation else 3)
            self._from_eval = self._from_eval or evaluation


def train(
    model: Any,
    feed: Feed,
    budget: Budget,
    stages: Sequence[Stage],
    lr: float,
    device: Any,
    seed: int,
    labels: Sequence[str],
    progress: Callable[[str], None] | None = None,
    share_seconds: Callable[[float], float] | None = None,
    spent: float = 0.0,
    closing_items: int = 0,
) -> Usage:
    """Run every stage within its share of the budget; leave the best dev checkpoint loaded.

    ``spent``: device seconds the run already used (building the model); the stages share what
    is left. ``closing_items``: utterances predicted after the loop (the last dev evaluation and
    the test set), whose estimated seconds the last stage keeps back.
    """
    import torch

    usage = Usage(build_seconds=spent, device_seconds=spent)
    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    plan = allocate(replace(budget, max_device_seconds=max(0.0, budget.max_device_seconds - spent)),
                    stages)
    closing = _Closing(closing_items)
    best_state: dict[str, Any] | None = None
    best_uar: float | None = None
    last_eval = -1
    reasons: list[str] = []
    for index, (stage, max_steps, max_seconds) in enumerate(plan):
        final_stage = index == len(plan) - 1
        clock = _Clock(max_seconds, device, share_seconds)
        stage_steps = 0
        step_cost = 0.0
        stopped = "max_steps"
        begin = getattr(model, "begin_stage", None)
        try:
            if begin is not None:
                with clock.metered():
                    begin(stage.name, MeteredData(feed, clock, usage, seed + index))
            optimizer = make_optimizer(model, lr) if max_steps > 0 else None
            batches = feed.train(seed + 1000 * index)
            model.train()
            while stage_steps < max_steps:
                if final_stage:
                    clock.reserve = closing.seconds()
                if not clock.affordable(step_cost):  # the step would not fit: stop before it
                    raise BudgetExhausted("max_device_seconds")
                before = clock.used
                with clock.metered():
                    batch = next(batches).to(device)
                    optimizer.zero_grad(set_to_none=True)
                    with _autocast(budget, device):
                        loss = model.loss(batch)
                    check_loss(loss, usage.steps + 1, stage.name)
                    loss.backward()
                    optimizer.step()
                step_cost = clock.used - before
                closing.saw(step_cost, batch.size, evaluation=False)
                stage_steps += 1
                usage.steps += 1
                usage.audio_seconds += batch.audio_seconds
                show_step(stage.name, usage.steps, budget.max_steps, best_uar,
                          budget.max_device_seconds - usage.device_seconds - clock.used)
                if final_stage and (stage_steps % budget.eval_every == 0):
                    before = clock.used
                    with clock.metered():
                        uar, n = _dev_uar(model, feed, device, budget, labels)
                    usage.eval_seconds += clock.used - before
                    closing.saw(clock.used - before, n, evaluation=True)
                    model.train()
                    usage.evaluations += 1
                    last_eval = usage.steps
                    if best_uar is None or uar > best_uar:
                        best_uar, best_state, usage.best_step = uar, _snapshot(model), usage.steps
                    if progress:
                        progress(f"step {usage.steps}: dev UAR {uar:.3f}")
        except BudgetExhausted as exc:
            stopped = exc.reason
        usage.device_seconds += clock.used
        usage.stages.append({"name": stage.name, "steps": stage_steps,
                             "device_seconds": round(clock.used, 3),
                             "max_steps": max_steps, "max_device_seconds": round(max_seconds, 3)})
        reasons.append(stopped)
    # the final state is a candidate too (it was not evaluated if eval_every does not divide it);
    # this last evaluation must finish, so it is metered without the timer (the reserve is for it)
    if last_eval != usage.steps:
        with measured(device, share_seconds) as last:
            uar, _ = _dev_uar(model, feed, device, budget, labels)
        usage.eval_seconds += last.used
        usage.device_seconds += last.used
        usage.evaluations += 1
        if best_uar is None or uar > best_uar:
            best_uar, best_state, usage.best_step = uar, None, usage.steps
    if best_state is not None:
        model.load_state_dict(best_state)
    usage.best_dev_uar = None if best_uar is None else round(best_uar, 6)
    usage.stopped_by = reasons[-1]
    usage.peak_memory_mb = _peak_memory_mb(device)
    return usage
