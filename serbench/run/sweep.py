"""What every executor shares: one planned run executed in a worker (the plan rebuilt once per
worker from ``Plan.request``), and the sweep's bookkeeping in the driver (skipped runs, outcomes in
plan order, the report hook)."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping, Sequence

from serbench.specs import ConfigError

Report = Callable[[dict[str, Any]], None]


class ExecutorError(ConfigError):
    """A worker or the cluster failed in a way no run record can hold."""


# ---------------------------------------------------------------------------------- workers

_PLANS: dict[str, Any] = {}  # one rebuilt plan per request, per worker process


def _worker_plan(request: Mapping[str, Any]) -> Any:
    import json

    from serbench.registry import collect
    from serbench.run.planning import make_plan

    key = json.dumps(request, sort_keys=True, default=repr)
    if key not in _PLANS:
        _PLANS[key] = make_plan(collect(), **request)
    return _PLANS[key]


def worker_request(plan: Any) -> dict[str, Any]:
    """``plan.request`` with the corpus root and protocol the driver resolved, so workers agree."""
    return {**plan.request, "data_root": str(plan.dataset.root.resolve()),
            "protocol": plan.dataset.protocol}


def execute_one(request: Mapping[str, Any], run_id: str, device: str | None, quiet: bool,
                results: str | None, progress: Any = None) -> dict[str, Any]:
    """Run one planned run in this (worker) process.

    Returns ``{"record": ...}`` plus ``"predictions"`` when ``results`` is ``None`` (the driver
    stores them), or ``{"fatal": message}`` for an error that stops the sweep (bad audio, a plan
    the worker cannot rebuild), which the driver raises.
    """
    result = execute_unit(request, [run_id], device, quiet, results, progress)
    return result if "fatal" in result else result["results"][0]


def execute_unit(request: Mapping[str, Any], run_ids: Sequence[str], device: str | None,
                 quiet: bool, results: str | None, progress: Any = None) -> dict[str, Any]:
    """Run a unit of planned runs in this (worker) process: one run, or a group of runs that
    train together (serbench.run.grouped). ``{"results": [...]}``, one item per run as
    :func:`execute_one` returns it, each run stored as it is done; or ``{"fatal": message}``."""
    from serbench.data.audio import AudioError
    from serbench.run.devices import resolve_device
    from serbench.run.grouped import attempt_unit
    from serbench.specs import error_line
    from serbench.store import Store

    try:
        plan = _worker_plan(request)
        by_id = {r.run_id: r for r in plan.runs}
        missing = [i for i in run_ids if i not in by_id]
        if missing:
            raise ExecutorError(f"worker {host()} computes other run ids than the driver (run "
                                f"{missing[0]} missing): install the same serbench and plugin "
                                "versions on every node")
        dev = resolve_device(device or plan.budget.device)
    except ConfigError as exc:
        return {"fatal": error_line(exc)}

    def tell(run: Any) -> Any:
        if progress is None:
            return None
        progress(run.run_id, f"started on {host()} ({dev})")
        return lambda message: progress(run.run_id, message)

    out: list[dict[str, Any]] = []
    try:  # a run that fails is stored as failed, the sweep goes on
        for _, run_record, predictions in attempt_unit(plan, [by_id[i] for i in run_ids], dev,
                                                       quiet=quiet, tell=tell):
            record = run_record.to_json()
            if results is None:
                out.append({"record": record, "predictions": predictions})
            else:  # stored as each run is done: a stopped sweep keeps it
                Store(results).write(record, predictions)
                out.append({"record": record})
    except AudioError as exc:
        return {"fatal": error_line(exc)}
    return {"results": out}


def host() -> str:
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def print_progress(run_id: str, message: str) -> None:
    print(f"serbench: run {run_id}: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- driver


class Sweep:
    """Bookkeeping shared by the executors: skipped runs, outcomes in plan order, the hook.

    A cell planned twice (the same run id in two plans of a suite) runs once.
    """

    def __init__(self, plans: Sequence[Any], store: Any, report: Report | None) -> None:
        from serbench.run.attempt import is_stored, skipped

        self.plans, self.store, self.report = plans, store, report
        self.by_id: dict[str, tuple[Any, Any]] = {}
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.todo: list[tuple[Any, Any]] = []
        for plan in plans:
            for run in plan.runs:
                if run.run_id in self.by_id:
                    continue
                self.by_id[run.run_id] = (plan, run)
                if is_stored(run, store):
                    self._emit(run.run_id, skipped(run, store))
                else:
                    self.todo.append((plan, run))

    def finished(self, record: Mapping[str, Any], predictions: list[Any] | None) -> None:
        """A run a worker finished; ``predictions`` are written here, ``None``: the worker did."""
        from serbench.run.attempt import finished

        plan, run = self.by_id[record["run_id"]]
        self._emit(run.run_id, finished(plan, run, record, predictions, self.store))

    def _emit(self, run_id: str, out: dict[str, Any]) -> None:
        self.outcomes[run_id] = out
        if self.report:
            self.report(out)

    def result(self) -> list[dict[str, Any]]:
        return [self.outcomes[r.run_id] for p in self.plans for r in p.runs
                if r.run_id in self.outcomes]


def finish(sweep: Sweep, result: Mapping[str, Any], store_it: bool) -> None:
    """Take a worker's result: one run's (``record``) or a unit's (``results``)."""
    if "fatal" in result:
        raise ExecutorError(result["fatal"])
    for one in result.get("results", [result]):
        sweep.finished(one["record"], one["predictions"] if store_it else None)
