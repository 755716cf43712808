"""Where a sweep's runs execute: here, in N local processes, on a Ray cluster, or under torchrun.

Every executor takes validated :class:`~serbench.run.planning.Plan` s (one, or every plan of a
suite) and returns one outcome per run, in plan order, reporting each as it finishes. Runs are
independent, so a sweep spreads over processes by run, across plans; workers rebuild each plan
once from ``Plan.request`` (plugins hold callables that do not travel) and check that they compute
the same run ids.

Who writes the store:

- local workers (``--workers N``) write their own runs: the store is a local folder that is safe for
  concurrent writers (atomic renames, SQLite in WAL mode), so the driver never serialises them;
- Ray tasks (``--executor ray``) return the record and predictions and the *driver* writes them, so
  worker nodes need the corpus (and their own feature cache) but not the results folder;
- under torchrun every rank trains the same run and rank 0 writes (:mod:`serbench.run.distributed`).

Local workers die with their driver: each holds the read end of a pipe (the *lifeline*) whose
only write end is the driver's, and exits the moment it reads end-of-file there, whether the driver
exited, was killed (SIGKILL, SIGTERM) or stops the sweep on Ctrl-C. Workers and the fork server
ignore SIGINT (a Ctrl-C in a terminal reaches the whole process group): the driver decides what it
stops. Once the workers are gone the fork server and the resource tracker exit by themselves
(each waits for end-of-file on a pipe its clients hold).

Ray tasks ask for the resources their budget declares: ``num_gpus=1`` when the budget's device is
CUDA (or ``auto`` on a cluster that has GPUs), ``num_cpus=budget.cpus``, ``memory=budget.memory_gb``
(GiB).
Their progress (start, node, dev evaluations) streams back to the driver through a small actor,
sent without waiting: a task blocked in ``ray.get`` would lend its CPUs to another task.
"""

from __future__ import annotations

import contextlib
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing.connection import Connection
from typing import Any, Iterator, Mapping, Sequence

from serbench.run.ray_executor import RayExecutor
from serbench.run.sweep import (
    ExecutorError,
    Report,
    Sweep,
    execute_unit,
    finish,
    print_progress,
    worker_request,
)
from serbench.specs import ConfigError

EXECUTORS = ("local", "ray")
EXIT_CUT = 3  # a local worker's exit status when its driver is gone or stopped the sweep


# ---------------------------------------------------------------------------------- workers

_ENV = ("SERBENCH_", "HF_", "TRANSFORMERS_")  # what a worker must see as the driver sees it now


def _init_local_worker(threads: int, env: Mapping[str, str], lifeline: Connection) -> None:
    """Share the cores (N workers × ``threads`` intra-op threads) and take the driver's current
    settings: a forkserver keeps the environment it started with. Leave Ctrl-C to the driver,
    and die with it."""
    import threading

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_cut, args=(lifeline,), name="serbench-lifeline",
                     daemon=True).start()
    for key in [k for k in os.environ if k.startswith(_ENV) and k not in env]:
        del os.environ[key]
    os.environ.update(env)
    torch.set_num_threads(threads)


def _exit_when_cut(lifeline: Connection) -> None:
    """Wait for end-of-file on the lifeline, then exit at once: the driver is gone or stops the
    sweep, so this worker takes no further run and stores nothing more (the store's atomic
    writes leave at most a hidden ``.tmp-`` folder of the run it was writing)."""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()
    os._exit(EXIT_CUT)


# ---------------------------------------------------------------------------------- executors


class LocalExecutor:
    """``--workers N``: N processes on this machine (1: in this process, no pool)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        if workers > 1:
            _start_early()

    def run(self, plans: Sequence[Any], store: Any, *, device: str | None = None,
            quiet: bool = False, report: Report | None = None) -> list[dict[str, Any]]:
        from serbench.run.devices import resolve_device
        from serbench.run.execution import prepare_features
        from serbench.run.grouped import units
        from serbench.run.inprocess import run_plan

        if self.workers == 1:
            return [o for plan in plans
                    for o in run_plan(plan, store, device=device, quiet=quiet, report=report)]
        store.ensure()
        sweep = Sweep(plans, store, report)
        if not sweep.todo:
            return sweep.result()
        for plan in plans:
            prepare_features(plan, [r for p, r in sweep.todo if p is plan],
                             resolve_device(device or plan.budget.device), quiet=quiet)
        requests = {id(plan): worker_request(plan) for plan in plans}
        work = units(sweep.todo, self.workers)
        n = min(self.workers, len(work))
        threads = max(1, (os.cpu_count() or 1) // n)
        progress = None if quiet else print_progress
        ctx = _context()
        lifeline, held = ctx.Pipe(duplex=False)  # ``held``: the only write end, never shared
        pool = ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_local_worker,
                                   initargs=(threads, {k: v for k, v in os.environ.items()
                                                       if k.startswith(_ENV)}, lifeline))
        try:
            caught: list[int] = []
            # a Ctrl-C while a worker is being started (the fork server may still be importing
            # torch) waits until it is: a worker started for a driver that has let go of the pool
            # cannot open the pool's semaphores and dies with a traceback
            with _on_sigint(lambda *_: caught.append(1)):
                pending = {pool.submit(execute_unit, requests[id(unit[0][0])],
                                       [r.run_id for _, r in unit], device, True,
                                       str(store.root), progress) for unit in work}
            if caught:
                raise KeyboardInterrupt
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    finish(sweep, _result(future), store_it=False)
        except KeyboardInterrupt:
            with _on_sigint(signal.SIG_IGN):  # the workers stop now: more Ctrl-C change nothing
                held.close()
                pool.shutdown(wait=True, cancel_futures=True)
            left = sum(r.run_id not in sweep.outcomes for _, r in sweep.todo)
            raise KeyboardInterrupt(f"stopped the sweep with {left} of {len(sweep.todo)} runs "
                                    "unfinished; finished runs are stored: run the same command "
                                    "again to finish the rest") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            held.close()
            lifeline.close()
        return sweep.result()


def _context() -> Any:
    """Workers forked from a server that imported torch and serbench once (not per worker);
    spawned where there is no fork. Never a plain fork of the driver, whose threads it copies."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # torch._dynamo: torch.optim imports it when the first optimiser is built (over a second)
    ctx.set_forkserver_preload(["torch", "torch._dynamo", "serbench.run.executors",
                                "serbench.run.execution", "serbench.run.training",
                                "serbench.data.feeds", "serbench.data.features",
                                "serbench.judge.metrics", "serbench.store"])
    return ctx


@contextlib.contextmanager
def _on_sigint(handler: Any) -> Iterator[None]:
    """``handler`` for SIGINT during a block (in the main thread), then the previous one again."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:  # None: a handler set outside Python, which it cannot restore
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _start_early() -> None:
    """Start the fork server now: it imports torch while the driver plans and fills caches.

    It starts with SIGINT ignored (an ignored signal stays ignored across exec; the workers it
    forks inherit that): a Ctrl-C while it imports torch would otherwise kill it with a traceback.
    Here SIGINT is blocked meanwhile, so that a Ctrl-C is delivered after, not lost.
    """
    from multiprocessing import forkserver

    if _context().get_start_method() == "forkserver":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with _on_sigint(signal.SIG_IGN):
                forkserver.ensure_running()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _result(future: Any) -> dict[str, Any]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool:
        raise ExecutorError("a worker process died (killed or out of memory); runs stored so "
                            "far are kept: run the same command again to finish") from None


class DistributedExecutor:
    """Under torchrun: all ranks train each run together (see :mod:`serbench.run.distributed`)."""

    def run(self, plans: Sequence[Any], store: Any, *, device: str | None = None,
            quiet: bool = False, report: Report | None = None) -> list[dict[str, Any]]:
        from serbench.run.distributed import run_distributed

        return run_distributed(plans, store, device=device, quiet=quiet, report=report)


def make_executor(name: str = "local", workers: int = 1,
                  address: str | None = None) -> LocalExecutor | RayExecutor | DistributedExecutor:
    """The executor a ``serbench run`` command line asks for."""
    from serbench.run.distributed import env_world

    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}: use {' or '.join(EXECUTORS)}")
    if address and name != "ray":
        raise ConfigError("--address is the Ray cluster address: use it with --executor ray")
    if env_world() is not None:
        if name != "local" or workers != 1:
            raise ConfigError("under torchrun every process trains the same run: drop "
                              "--workers and --executor")
        return DistributedExecutor()
    if name == "ray":
        if workers != 1:
            raise ConfigError("--workers is for the local executor; Ray places runs itself "
                              "(set cpus in the budget)")
        return RayExecutor(address)
    return LocalExecutor(workers)


def is_primary() -> bool:
    """False on torchrun ranks other than 0: they print nothing and store nothing."""
    from serbench.run.distributed import env_world

    found = env_world()
    return found is None or found[0] == 0
