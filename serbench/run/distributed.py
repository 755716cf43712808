"""One run on several devices: ``torchrun --nproc_per_node K -m serbench run ...``.

torchrun starts K copies of the command and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``.
Every rank plans the same sweep; rank 0 decides which runs are missing from the store and tells
the others, then all ranks train each run together:

- the process group uses NCCL on CUDA (one device per local rank) and gloo on CPU;
- the feed yields the same *global* batch on every rank (same seed); each rank takes its
  contiguous share and weights its mean loss by its share of the batch, so DistributedDataParallel's
  gradient average equals the single-process gradient of the global batch;
- the budget counts global steps (one step = one global batch) and the device seconds of all ranks
  together (an all-reduce after every metered block), so every rank stops at the same step;
- only rank 0 writes to the results store and prints outcomes.

Losses that compare items within a batch (contrastive, CLAP) see only their rank's share of it;
they are still trained correctly, but with fewer negatives per step than one process would have.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator, Sequence

from serbench.run.devices import resolve_device
from serbench.specs import Batch, ConfigError


def env_world() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when launched by torchrun with more than one process."""
    size = os.environ.get("WORLD_SIZE")
    if not size or int(size) <= 1:
        return None
    rank = int(os.environ.get("RANK", "0"))
    return rank, int(size), int(os.environ.get("LOCAL_RANK", str(rank)))


@dataclass
class World:
    """This process's place in the process group, and the collectives the runner needs."""

    rank: int
    size: int
    local_rank: int
    device: Any

    @property
    def primary(self) -> bool:
        return self.rank == 0

    def total_seconds(self, seconds: float) -> float:
        """The sum of ``seconds`` over all ranks (the budget meters every device)."""
        import torch
        import torch.distributed as dist

        t = torch.tensor([seconds], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def wrap(self, model: Any) -> DistributedModel:
        return DistributedModel(model, self)


@contextlib.contextmanager
def process_group(device_name: str | None) -> Iterator[World]:
    """Join torchrun's process group for the duration of a sweep."""
    import torch.distributed as dist

    found = env_world()
    if found is None:
        raise ConfigError("not launched by torchrun: WORLD_SIZE is unset or 1")
    rank, size, local_rank = found
    device = resolve_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=size)
    try:
        yield World(rank, size, local_rank, device)
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------- the model


def shard(batch: Batch, rank: int, size: int) -> tuple[Batch, float]:
    """This rank's contiguous share of a global batch, and the weight of its mean loss.

    With ``n`` of ``B`` items the weight is ``n * size / B``: DDP averages gradients over ranks,
    so the result is the gradient of the global batch's mean loss. A rank left without items
    (a batch smaller than the world) computes the whole batch with weight 0 to join the
    gradient all-reduce.
    """
    import torch

    b = batch.size
    lo, hi = b * rank // size, b * (rank + 1) // size
    if hi == lo:
        return batch, 0.0
    idx = torch.arange(lo, hi, device=batch.labels.device)

    def take(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == b:
            return value.index_select(0, idx.to(value.device))
        if isinstance(value, list) and value and all(isinstance(v, torch.Tensor) for v in value):
            return [take(v) for v in value]  # features: one (B, T, D) tensor per layer
        if isinstance(value, list) and len(value) == b:
            return value[lo:hi]
        return value

    parts = {f.name: take(getattr(batch, f.name)) for f in fields(batch)}
    if parts["stacked"] is not None:
        parts["features"] = None  # views of the taken stack (Batch makes them), not a 2nd copy
    parts["audio_seconds"] = batch.audio_seconds * (hi - lo) / b
    return Batch(**parts), (hi - lo) * size / b


def _loss_module(model: Any) -> Any:
    """An ``nn.Module`` whose forward is the method's loss: DDP syncs gradients only through it."""
    import torch

    class LossForward(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, batch: Batch) -> Any:
            return self.inner.loss(batch)

    return LossForward(model)


class DistributedModel:
    """The method's model as the training loop sees it under torchrun.

    ``loss`` runs through DistributedDataParallel on this rank's shard; everything else
    (``predict``, ``state_dict``, ``parameters``, ``configure_optimizer``...) is the model's own.
    After a stage's preparation step the wrapper is rebuilt, since the preparation may change
    which parameters train.
    """

    def __init__(self, model: Any, world: World) -> None:
        self.model = model
        self.world = world
        self._ddp = self._make()

    def _make(self) -> Any:
        from torch.nn.parallel import DistributedDataParallel

        if not any(p.requires_grad for p in self.model.parameters()):
            return None
        ids = [self.world.device.index] if self.world.device.type == "cuda" else None
        return DistributedDataParallel(_loss_module(self.model), device_ids=ids,
                                       find_unused_parameters=True)

    def loss(self, batch: Batch) -> Any:
        part, weight = shard(batch, self.world.rank, self.world.size)
        if self._ddp is None:
            return self.model.loss(part) * weight
        return self._ddp(part) * weight

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.model, name)
        if name == "begin_stage":
            return self._begin_stage(value)
        return value

    def _begin_stage(self, begin: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            out = begin(*args, **kwargs)
            self._ddp = self._make()
            return out

        return run


# ---------------------------------------------------------------------------------- the sweep


def run_distributed(plans: Sequence[Any], store: Any, *, device: str | None, quiet: bool,
                    report: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """Every missing run of ``plans``, each trained by all ranks together; rank 0 stores it."""
    from serbench.run.attempt import attempt, finished, outcome, skipped

    if not plans:
        return []
    runs = [(plan, run) for plan in plans for run in plan.runs]
    with process_group(device or plans[0].budget.device) as world:
        if world.primary:
            store.ensure()
            missing = [r.run_id for _, r in runs if not (r.done or store.has(r.run_id))]
        else:
            missing = None
        missing = set(world.agree(missing))
        outcomes = []
        for plan, run in runs:
            if run.run_id not in missing:
                out = skipped(run, store if world.primary else None)
            else:
                record, predictions = attempt(plan, run, world.device,
                                              quiet=quiet or not world.primary, world=world)
                if record.status == "failed":
                    print(f"serbench: rank {world.rank}: {record.error}", file=sys.stderr)
                record.environment["world_size"] = world.size
                out = (finished(plan, run, record, predictions, store) if world.primary
                       else outcome(run, record.to_json(), record.status))
                missing.discard(run.run_id)  # the same cell in another plan is done now
            outcomes.append(out)
            if report and world.primary:
                report(out)
        world.barrier()
    return outcomes
