"""``--executor ray``: runs as Ray tasks asking for the resources their budget declares; the driver
writes what they return (see :mod:`serbench.run.executors`)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from serbench.run.sweep import (
    ExecutorError,
    Report,
    Sweep,
    execute_one,
    finish,
    print_progress,
    worker_request,
)
from serbench.specs import Budget, ConfigError


def task_resources(budget: Budget, device: str | None,
                   cluster: Mapping[str, float]) -> dict[str, Any]:
    """Ray task options for one run under ``budget`` on a cluster with ``cluster`` resources.

    A request the cluster can never meet is an error here: Ray would wait for it forever.
    """
    name = device or budget.device
    cluster_gpus = float(cluster.get("GPU", 0))
    if not isinstance(budget.cpus, int) or isinstance(budget.cpus, bool) or budget.cpus < 1:
        raise ConfigError(f"budget {budget.name!r}: cpus must be a positive integer, "
                          f"got {budget.cpus!r}")
    if not isinstance(budget.memory_gb, (int, float)) or budget.memory_gb < 0:
        raise ConfigError(f"budget {budget.name!r}: memory_gb must be a number >= 0, "
                          f"got {budget.memory_gb!r}")
    gpus = 1 if name.startswith("cuda") or (name == "auto" and cluster_gpus > 0) else 0
    if gpus and cluster_gpus <= 0:
        raise ConfigError(f"budget {budget.name!r} asks for device {name!r}, but the Ray "
                          "cluster has no GPU; use --device cpu or a cluster with GPUs")
    if budget.cpus > float(cluster.get("CPU", 0)):
        raise ConfigError(f"budget {budget.name!r} asks for {budget.cpus} CPUs per run, but the "
                          f"Ray cluster has {float(cluster.get('CPU', 0)):g} in all; lower cpus "
                          "in the budget")
    out: dict[str, Any] = {"num_cpus": budget.cpus, "num_gpus": gpus}
    if budget.memory_gb > 0:
        out["memory"] = int(budget.memory_gb * 2**30)
    return out


class RayExecutor:
    """``--executor ray [--address ADDR]``: one Ray task per run; the driver stores results."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'serbench[ray]'") from None
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS")
            extra = {} if address else {"include_dashboard": False}  # only for a new instance
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR", **extra)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a new local instance"
                raise ExecutorError(f"cannot start or reach the Ray cluster at {where}: "
                                    f"{' '.join(str(exc).split())[:200]}") from None
        return ray

    def run(self, plans: Sequence[Any], store: Any, *, device: str | None = None,
            quiet: bool = False, report: Report | None = None) -> list[dict[str, Any]]:
        store.ensure()
        sweep = Sweep(plans, store, report)
        if not sweep.todo:
            return sweep.result()
        ray = self._connect()
        cluster = ray.cluster_resources()
        task = ray.remote(max_retries=0)(_ray_task)
        # every plan's resources are checked before the first task is sent
        options = {id(p): task_resources(p.budget, device, cluster) for p in plans}
        requests = {id(plan): worker_request(plan) for plan in plans}
        sink = ray.remote(num_cpus=0)(_ProgressSink).remote()
        pending = {task.options(**options[id(plan)]).remote(requests[id(plan)], r.run_id, device,
                                                            sink): r
                   for plan, r in sweep.todo}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                # progress first: a task flushes its events before it returns
                for run_id, message in ray.get(sink.take.remote()):
                    if not quiet:
                        print_progress(run_id, message)
                for ref in done:
                    pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise ExecutorError(f"a Ray task failed outside the run: "
                                            f"{' '.join(str(exc).split())[:300]}") from None
                    finish(sweep, result, store_it=True)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            ray.kill(sink)
        return sweep.result()


class _ProgressSink:
    """A Ray actor holding progress events until the driver takes them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def put(self, event: tuple[str, str]) -> None:
        self.events.append(event)

    def take(self) -> list[tuple[str, str]]:
        out, self.events = self.events, []
        return out

    def flush(self) -> None:
        """Returns once every earlier ``put`` of the caller is held."""


def _ray_task(request: Mapping[str, Any], run_id: str, device: str | None,
              sink: Any) -> dict[str, Any]:
    """What a Ray worker runs: one run, progress to ``sink``, the result back to the driver."""
    import ray

    result = execute_one(request, run_id, device, True, None,
                         progress=lambda rid, msg: sink.put.remote((rid, msg)))
    ray.get(sink.flush.remote())  # calls from one caller run in order: every event is in
    return result
