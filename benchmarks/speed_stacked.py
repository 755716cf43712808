"""CPU milliseconds per run-step of the ``linear`` probe: alone, looped in a group, stacked.

    python benchmarks/speed_stacked.py [--members 15] [--steps 300] [--repeats 2]

The arithmetic of one training step of ``linear`` (serbench_baselines.probes.LinearProbe: the
softmax layer weighting, the (C x 256)(256 x 768) product, cross-entropy, backward, fused AdamW)
on random pooled features of a base model's shape (535 utterances x 13 layers x 768, batches of
32, 7 classes), on one thread, three ways:

- ``alone``: one probe, one optimiser step per step (a separate run);
- ``looped``: ``--members`` probes, each step every member's loss and backward, then one fused
  AdamW step over all (what serbench.run.grouped does);
- ``stacked``: the members' parameters stacked (M x ...), one batched product for all, padded
  batches with a masked loss, one backward, one AdamW step (what a method-specific stacked
  model could do; not in serbench).

If the stacked way were much cheaper per run-step than the looped one, a stacking hook for
methods would pay; if all three are close, a probe's step on this device is bound by its
arithmetic and memory traffic, not by the loop's overhead.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

N, L, D, C, H, B = 535, 13, 768, 7, 256, 32


def adamw(params: list[torch.Tensor]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0, fused=True)


class Probe(nn.Module):
    """LinearProbe's forward on pooled (B, L, D) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(L))
        self.project = nn.Linear(D, H)
        self.classify = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        pooled = torch.bmm(torch.softmax(self.weights, 0).expand(b, 1, L), x).view(b, D)
        weight = self.classify.weight @ self.project.weight
        bias = torch.addmv(self.classify.bias, self.classify.weight, self.project.bias)
        return torch.addmm(bias, pooled, weight.t())


def looped(sources: list[torch.Tensor], members: int, steps: int) -> float:
    probes = [Probe() for _ in range(members)]
    optimizer = adamw([p for m in probes for p in m.parameters()])
    start = time.process_time()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        for i, probe in enumerate(probes):
            x = sources[i % len(sources)].index_select(0, torch.randint(0, N, (B,)))
            loss = nn.functional.cross_entropy(probe(x), torch.randint(0, C, (B,)))
            loss.item()
            loss.backward()
        optimizer.step()
    return (time.process_time() - start) / steps / members * 1000


def stacked(sources: list[torch.Tensor], members: int, steps: int) -> float:
    m = members
    weights = nn.Parameter(torch.zeros(m, L))
    project = nn.Parameter(torch.randn(m, H, D) * 0.01)
    project_bias = nn.Parameter(torch.zeros(m, H))
    classify = nn.Parameter(torch.randn(m, C, H) * 0.01)
    classify_bias = nn.Parameter(torch.zeros(m, C))
    optimizer = adamw([weights, project, project_bias, classify, classify_bias])
    x = torch.empty(m, B, L, D)
    mask = torch.ones(m, B)
    start = time.process_time()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        for i in range(m):
            torch.index_select(sources[i % len(sources)], 0, torch.randint(0, N, (B,)), out=x[i])
        pooled = torch.matmul(torch.softmax(weights, 1)[:, None, None, :], x).squeeze(2)
        weight = torch.bmm(classify, project)
        bias = classify_bias + torch.bmm(classify, project_bias[:, :, None]).squeeze(2)
        logits = torch.baddbmm(bias[:, None, :], pooled, weight.transpose(1, 2))
        each = nn.functional.cross_entropy(logits.reshape(m * B, C),
                                           torch.randint(0, C, (m * B,)), reduction="none")
        loss = ((each.view(m, B) * mask).sum(1) / mask.sum(1)).sum()
        loss.item()
        loss.backward()
        optimizer.step()
    return (time.process_time() - start) / steps / m * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=15)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sources = [torch.randn(N, L, D) for _ in range(10)]  # ten folds' normalised features
    for repeat in range(args.repeats):
        alone = looped(sources, 1, args.steps * args.members)
        loop = looped(sources, args.members, args.steps)
        stack = stacked(sources, args.members, args.steps)
        print(f"repeat {repeat}: ms per run-step (CPU): alone {alone:.3f}, looped {loop:.3f}, "
              f"stacked {stack:.3f} ({args.members} members)", flush=True)


if __name__ == "__main__":
    main()
