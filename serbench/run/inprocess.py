"""A plan executed in this process: the seeds and folds of a condition on frozen features as one
group (:mod:`serbench.run.grouped`), every other run alone, each stored as it finishes."""

from __future__ import annotations

from typing import Any

from serbench.run.attempt import Report, finished, is_stored, skipped
from serbench.run.planning import Plan, PlannedRun
from serbench.store import Store


def run_plan(plan: Plan, store: Store, *, device: str | None = None, quiet: bool = False,
             report: Report | None = None) -> list[dict[str, Any]]:
    """Execute every run not yet stored, in this process (the seeds and folds of a condition on
    frozen features as one group: serbench.run.grouped); store each as it finishes. Returns the
    outcomes in plan order."""
    from serbench.run.devices import resolve_device
    from serbench.run.grouped import attempt_unit, units

    dev = resolve_device(device or plan.budget.device)
    store.ensure()
    todo = [(plan, run) for run in plan.runs if not is_stored(run, store)]
    first = {unit[0][1].run_id: [run for _, run in unit] for unit in units(todo)}
    outcomes: dict[str, dict[str, Any]] = {}

    def emit(run: PlannedRun, out: dict[str, Any]) -> None:
        outcomes[run.run_id] = out
        if report:
            report(out)

    for run in plan.runs:
        if run.run_id in first:
            for member, record, predictions in attempt_unit(plan, first[run.run_id], dev,
                                                            quiet=quiet):
                emit(member, finished(plan, member, record, predictions, store))
        elif run.run_id not in outcomes:  # stored before (a group's later runs are emitted)
            emit(run, skipped(run, store))
    return [outcomes[run.run_id] for run in plan.runs]
