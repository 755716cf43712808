"""One way a run is attempted, whatever executes it (this process, a process pool, Ray or
torchrun): skip it if stored, try it, record a failure, write it, tell the plugins.

A run that fails is stored as failed with its error and the sweep goes on; bad audio (it would fail
every run) and an interrupt stop the sweep, and nothing stored is touched.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from serbench.run.execution import execute_run, failed_record
from serbench.run.planning import Plan, PlannedRun
from serbench.run.record import RunRecord, as_json
from serbench.specs import error_line
from serbench.store import Store

Report = Callable[[dict[str, Any]], None]


def attempt(plan: Plan, run: PlannedRun, device: Any, *, quiet: bool = True,
            progress: Callable[[str], None] | None = None, world: Any = None
            ) -> tuple[RunRecord, list[dict[str, Any]]]:
    """Try one run: its record and predictions, or a failed record naming the error."""
    from serbench.data.audio import AudioError

    try:
        return execute_run(plan, run, device, quiet=quiet, progress=progress, world=world)
    except (AudioError, KeyboardInterrupt):
        raise  # bad data fails every run: stop the sweep
    except Exception as exc:  # this run failed; record it and go on
        return failed_record(plan, run, error_line(exc), device), []


def is_stored(run: PlannedRun, store: Store) -> bool:
    return run.done or store.has(run.run_id)


def skipped(run: PlannedRun, store: Store | None) -> dict[str, Any]:
    """The outcome of a run the store already holds (``store=None``: a rank that cannot read)."""
    return outcome(run, store.read_record(run.run_id) if store else None, "skipped")


def finished(plan: Plan, run: PlannedRun, record: RunRecord | Mapping[str, Any],
             predictions: list[dict[str, Any]] | None, store: Store | None) -> dict[str, Any]:
    """Write a finished run (``predictions=None``: a worker wrote it already), tell the plugins,
    and return its outcome."""
    from serbench.plugins import notify_run_finished

    data = as_json(record)
    if predictions is not None and store is not None:
        store.write(data, predictions)
    notify_run_finished(plan.components.plugins, data)
    return outcome(run, data, data["status"])


def outcome(run: PlannedRun, record: Mapping[str, Any] | None, status: str) -> dict[str, Any]:
    """The ``--json`` line of one run."""
    metrics = (record or {}).get("metrics") or {}
    s = run.spec
    return {
        "run_id": run.run_id, "status": status, "upstream": s.upstream, "method": s.method,
        "dataset": s.dataset, "protocol": s.protocol, "fold": s.fold, "seed": s.seed,
        "budget": s.budget, "options": dict(s.options),
        "metrics": {k: metrics.get(k) for k in ("uar", "war", "macro_f1")} if metrics else None,
        "error": (record or {}).get("error"),
    }
