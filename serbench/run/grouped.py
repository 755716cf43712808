"""Runs of one condition on frozen features trained together: one loop, one optimiser step.

A probe on cached features takes well under a millisecond of arithmetic per step; alone, most of
a step is the loop's own overhead (the clock, the optimiser call, the autograd engine). The
seeds and folds of one condition are therefore trained as one group: every step takes each
member's next batch, its loss and its backward, then one fused AdamW step updates every member's
parameters (AdamW is elementwise and nothing couples the members, so each member's update is
the one it would get alone). Each member is what its separate run would be: seeded and built
exactly as serbench.run.execution does (``seed_everything(seed)`` then ``build``), its own
batches (``feed.train(seed)``), its own torch random stream (swapped in around its work), its
own dev evaluations, best checkpoint and test prediction; each is stored as its own run.

A group forms only where the step limit binds. Its device seconds are metered on one clock that
may use half of what *one* of its runs may spend (``max_device_seconds / MARGIN``): a group
that fits there does the work of each separate run and more, so no separate run could have
been stopped by its device-second limit. A group that would not fit (found before it starts,
from the estimator's seconds per step, or while it trains) is abandoned and its runs go one by
one, as does a group whose models need the loop's other hooks (``begin_stage``, a custom
optimiser, several stages). Members' device seconds: their own build, dev evaluations and test
prediction, and an equal share of the group's training steps (``usage.group`` says so).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from serbench.options import HarnessOptions
from serbench.run.attempt import attempt
from serbench.run.execution import (
    Fit,
    Inputs,
    build_context,
    check_splits,
    failed_record,
    finish_run,
    load_inputs,
    seed_everything,
    trial_count,
)
from serbench.run.planning import Plan, PlannedRun
from serbench.run.record import RunRecord
from serbench.run.training import (
    BudgetExhausted,
    Usage,
    _autocast,
    _Clock,
    _Closing,
    _dev_uar,
    _peak_memory_mb,
    _snapshot,
    adamw,
    check_loss,
    measured,
)
from serbench.specs import Budget, error_line

MARGIN = 2.0  # a group may use 1/MARGIN of one run's device seconds
CHECK_AT = 10  # steps after which the group's measured pace is checked against its limit

_GAVE_WAY: set[str] = set()  # conditions whose models cannot train in a group (this process)

Tell = Callable[[PlannedRun], Callable[[str], None] | None]
Done = list[tuple[PlannedRun, RunRecord, list[dict[str, Any]]]]


class Ungroupable(Exception):
    """The group cannot train together; its runs go one by one (``for_good``: no group of this
    condition can)."""

    def __init__(self, reason: str, for_good: bool = False) -> None:
        super().__init__(reason)
        self.for_good = for_good


def _condition(run: PlannedRun) -> str:
    return json.dumps([run.spec.method, run.spec.upstream, run.condition.options],
                      sort_keys=True, default=repr)


# ------------------------------------------------------------------------------ which runs


def groupable(plan: Plan, run: PlannedRun) -> bool:
    """A run that may train in a group: frozen upstream, one stage, no trial search."""
    cond = run.condition
    return (not cond.method.finetunes(cond.options) and len(cond.method.stages) == 1
            and trial_count(plan.budget, run) == 1 and most_members(plan.budget) >= 2)


def most_members(budget: Budget) -> int:
    """The largest group whose steps, at the estimator's (generous) seconds per step of a probe
    on cached features, fit in ``1/MARGIN`` of one run's device seconds."""
    from serbench.run.estimate import HEAD_STEP_SECONDS

    return int(budget.max_device_seconds / MARGIN // (budget.max_steps * HEAD_STEP_SECONDS))


def units(todo: Sequence[tuple[Plan, PlannedRun]], workers: int = 1
          ) -> list[list[tuple[Plan, PlannedRun]]]:
    """The runs to do, as units of work in plan order: one run, or a group of one condition's
    runs (its folds and seeds), split into ``workers`` parts so that every worker has one (a
    part of one run trains alone), and into parts no larger than :func:`most_members`."""
    keyed: dict[Any, list[tuple[Plan, PlannedRun]]] = {}
    order: list[Any] = []
    for plan, run in todo:
        key: Any = id(run)
        if groupable(plan, run):
            key = (id(plan), _condition(run))
        if key not in keyed:
            keyed[key] = []
            order.append(key)
        keyed[key].append((plan, run))
    out = []
    for key in order:
        members = keyed[key]
        if len(members) == 1:
            out.append(members)
            continue
        parts = max(math.ceil(len(members) / most_members(members[0][0].budget)),
                    min(workers, len(members)))
        size = math.ceil(len(members) / parts)
        out.extend(members[i : i + size] for i in range(0, len(members), size))
    return out


def attempt_unit(plan: Plan, runs: Sequence[PlannedRun], device: Any, *, quiet: bool = True,
                 tell: Tell | None = None) -> Iterator[tuple[PlannedRun, RunRecord,
                                                            list[dict[str, Any]]]]:
    """Each run's record and predictions as soon as it has them: a group's all at its end, or,
    when there is one run or the group cannot train together, each run alone
    (serbench.run.attempt) as it finishes."""
    from serbench.data.audio import AudioError

    tell = tell or (lambda run: None)
    done: Done | None = None
    if len(runs) > 1 and _condition(runs[0]) not in _GAVE_WAY:
        try:
            done = _train_group(plan, runs, device, quiet, tell)
        except (AudioError, KeyboardInterrupt):
            raise
        except Ungroupable as exc:
            if exc.for_good:  # the model itself: its other groups need not build it to learn
                _GAVE_WAY.add(_condition(runs[0]))
        except Exception:  # anything the group as a whole met: each run alone meets its own
            pass
    if done is not None:
        yield from done
        return
    for run in runs:
        yield (run, *attempt(plan, run, device, quiet=quiet, progress=tell(run)))


# ------------------------------------------------------------------------------ one member


@dataclass
class _Member:
    """One run of a group: its data, model, random stream and what it spent."""

    run: PlannedRun
    inputs: Inputs
    feed: Any
    model: Any
    params: list[Any]
    usage: Usage
    rng: Any
    closing: _Closing
    progress: Callable[[str], None] | None
    batches: Iterator[Any] | None = None
    best_state: dict[str, Any] | None = None
    best_uar: float | None = None
    last_eval: int = -1
    seconds: float = 0.0  # this stage's device seconds: its share of the steps, its evaluations
    error: str | None = None
    closing_size: int = 0  # utterances in its last training batch

    def own_random(self) -> Any:
        return _RandomStream(self)

    def step(self, budget: Any, device: Any, stage: str) -> float:
        """Its next batch's loss and backward (the caller steps the optimiser); audio seconds."""
        batch = next(self.batches).to(device)  # type: ignore[arg-type]
        with self.own_random(), _autocast(budget, device):
            loss = self.model.loss(batch)
            check_loss(loss, self.usage.steps + 1, stage)
            loss.backward()
        self.closing_size = batch.size
        return float(batch.audio_seconds)

    def evaluate(self, budget: Any, device: Any, labels: Sequence[str]) -> tuple[float, int]:
        with self.own_random():
            result = _dev_uar(self.model, self.feed, device, budget, labels)
        self.model.train()
        return result

    def keep(self, uar: float, step: int, snapshot: bool) -> None:
        self.usage.evaluations += 1
        if self.best_uar is None or uar > self.best_uar:
            self.best_uar, self.usage.best_step = uar, step
            self.best_state = _snapshot(self.model) if snapshot else None
        if snapshot:
            self.last_eval = step
            if self.progress:
                self.progress(f"step {step}: dev UAR {uar:.3f}")

    def fail(self, exc: BaseException) -> None:
        self.error = error_line(exc)
        for p in self.params:
            p.grad = None  # the optimiser skips it from now on


class _RandomStream:
    """A member's torch random state in place while it works, kept after (members interleave,
    so a method that draws random numbers, dropout say, draws its own run's numbers)."""

    def __init__(self, member: _Member) -> None:
        self.member = member

    def __enter__(self) -> None:
        _set_random(self.member.rng)

    def __exit__(self, *exc: Any) -> None:
        self.member.rng = _get_random()


def _get_random() -> Any:
    import torch

    cuda = [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_initialized() else []
    return torch.get_rng_state(), cuda


def _set_random(state: Any) -> None:
    import torch

    cpu, cuda = state
    torch.set_rng_state(cpu)
    for i, s in enumerate(cuda):
        torch.cuda.set_rng_state(s, i)


# ------------------------------------------------------------------------------ the group


def _train_group(plan: Plan, runs: Sequence[PlannedRun], device: Any, quiet: bool,
                 tell: Tell) -> Done:
    if len(runs) > most_members(plan.budget):
        raise Ungroupable("the group's steps may not fit in its device seconds")
    started = time.time()
    members, failed = _build_members(plan, runs, device, quiet, tell)
    cond = runs[0].condition
    stage = cond.method.stages[0]
    seconds = _train_steps(plan, members, device, HarnessOptions.read(
        cond.method.name, cond.options).lr, stage.name)
    out: Done = [(run, failed_record(plan, run, error, device), []) for run, error in failed]
    n = len(runs)
    for m in members:
        if m.error is None:
            try:
                _close(plan, m, device, stage.name, n, seconds)
                record, predictions = finish_run(plan, m.run, m.inputs, Fit(
                    m.model, m.usage, dict(cond.options), [], []), m.feed, device, None,
                    started)
                out.append((m.run, record, predictions))
                continue
            except Exception as exc:  # this run failed; the others go on
                m.fail(exc)
        out.append((m.run, failed_record(plan, m.run, m.error or "", device), []))
    wall = round((time.time() - started) / n, 3)
    for _, record, _ in out:  # the runs overlapped: each has an equal share of the wall time
        if record.status == "ok":
            record.duration_seconds = wall
    order = {run.run_id: i for i, run in enumerate(runs)}
    return sorted(out, key=lambda o: order[o[0].run_id])


def _build_members(plan: Plan, runs: Sequence[PlannedRun], device: Any, quiet: bool,
                   tell: Tell) -> tuple[list[_Member], list[tuple[PlannedRun, str]]]:
    """Each run's inputs (one feed per fold) and model, built exactly as alone; the runs that
    failed there, with their errors."""
    from serbench.contracts import method_model
    from serbench.data.audio import AudioError

    cond = runs[0].condition
    feeds: dict[str, tuple[Inputs, Any]] = {}
    members: list[_Member] = []
    failed: list[tuple[PlannedRun, str]] = []
    for run in runs:
        try:
            seed_everything(run.spec.seed)
            if run.spec.fold not in feeds:
                inputs = load_inputs(plan, run, device, quiet)
                check_splits(inputs.splits, run.spec.fold)
                feeds[run.spec.fold] = (inputs, inputs.make_feed())
            inputs, feed = feeds[run.spec.fold]
            seed_everything(run.spec.seed)
            ctx = build_context(plan, run, dict(cond.options), device)
            with measured(device) as built:
                model = method_model(cond.method.name, cond.method.build(ctx)).to(device)
        except (AudioError, KeyboardInterrupt):
            raise
        except Exception as exc:  # this run fails alone as it would have alone
            failed.append((run, error_line(exc)))
            continue
        params = [p for p in model.parameters() if p.requires_grad]
        hooks = [h for h in ("begin_stage", "configure_optimizer")
                 if getattr(model, h, None) is not None]
        if hooks or not params or len(getattr(model, "stages", cond.method.stages)) != 1:
            raise Ungroupable(f"the model has {hooks or 'stages or no parameters'}", for_good=True)
        closing = _Closing(len(inputs.splits["dev"]) + len(inputs.splits["test"]))
        members.append(_Member(run, inputs, feed, model, params,
                               Usage(build_seconds=built.used, device_seconds=built.used),
                               _get_random(), closing, tell(run)))
    return members, failed


def _train_steps(plan: Plan, members: list[_Member], device: Any, lr: float,
                 stage: str) -> float:
    """Every member's steps in lockstep under one clock; the group's training seconds."""
    from serbench.run.progress import step as show_step

    budget = plan.budget
    built = sum(m.usage.build_seconds for m in members)
    clock = _Clock(budget.max_device_seconds / MARGIN - built, device)
    live = list(members)
    if not live:
        return 0.0
    optimizer = adamw([{"params": [p for m in live for p in m.params], "lr": lr}])
    for m in live:
        m.batches = m.feed.train(m.run.spec.seed)
        m.model.train()
    step_cost, stepping, steps = 0.0, 0.0, 0
    try:
        while steps < budget.max_steps and live:
            clock.reserve = sum(m.closing.seconds() for m in live)
            # after a few steps, the rest at the pace so far must fit; before, the next step
            pace = stepping / steps * (budget.max_steps - steps) if steps >= CHECK_AT else 0.0
            if not clock.affordable(max(pace, step_cost)):
                raise Ungroupable("the group would not finish within its device seconds")
            before = clock.used
            audio = {}
            with clock.metered():
                optimizer.zero_grad(set_to_none=True)
                for m in live:
                    try:
                        audio[id(m)] = m.step(budget, device, stage)
                    except BudgetExhausted:
                        raise
                    except Exception as exc:  # this run failed; the others go on
                        m.fail(exc)
                optimizer.step()
            step_cost = clock.used - before
            stepping += step_cost
            share = step_cost / len(live)
            for m in live:
                m.seconds += share
            live = [m for m in live if m.error is None]
            steps += 1
            for m in live:
                m.usage.steps += 1
                m.usage.audio_seconds += audio[id(m)]
                m.closing.saw(share, m.closing_size, evaluation=False)
            show_step(stage, steps, budget.max_steps, None, clock.limit - clock.used)
            if steps % budget.eval_every == 0:
                for m in live:
                    before = clock.used
                    with clock.metered():
                        uar, n = m.evaluate(budget, device, plan.dataset.labels)
                    m.seconds += clock.used - before
                    m.usage.eval_seconds += clock.used - before
                    m.closing.saw(clock.used - before, n, evaluation=True)
                    m.keep(uar, steps, snapshot=True)
    except BudgetExhausted as exc:
        raise Ungroupable("the group ran out of its device seconds") from exc
    return clock.used


def _close(plan: Plan, m: _Member, device: Any, stage: str, runs: int, seconds: float) -> None:
    """A member's last evaluation and best checkpoint, and its usage as a run records it."""
    budget = plan.budget
    usage = m.usage
    usage.device_seconds += m.seconds
    usage.stages.append({"name": stage, "steps": usage.steps,
                         "device_seconds": round(m.seconds, 3), "max_steps": budget.max_steps,
                         "max_device_seconds": round(budget.max_device_seconds
                                                     - usage.build_seconds, 3)})
    if m.last_eval != usage.steps:
        with measured(device) as last:
            uar, _ = m.evaluate(budget, device, plan.dataset.labels)
        usage.eval_seconds += last.used
        usage.device_seconds += last.used
        m.keep(uar, usage.steps, snapshot=False)
    if m.best_state is not None:
        m.model.load_state_dict(m.best_state)
    usage.best_dev_uar = None if m.best_uar is None else round(m.best_uar, 6)
    usage.stopped_by = "max_steps"
    usage.peak_memory_mb = _peak_memory_mb(device)
    usage.group = {"runs": runs, "train_seconds": round(seconds, 3), "share": "equal"}
