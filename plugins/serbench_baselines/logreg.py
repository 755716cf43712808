"""``logreg``: L2-regularised multinomial logistic regression on pooled features, solved exactly.

The objective of each regularisation strength ``C`` is scikit-learn's (``LogisticRegression``,
multinomial, intercept not penalised), divided by the number of training utterances N:

    mean_i CE(W x_i + b, y_i) + ||W||² / (2 C N)

It is strictly convex, so the fit is its unique minimum, whatever the solver. The training and dev
splits are read once, whole, in the loop's preparation step (``begin_stage``, metered). Each loop
step is then one full-batch L-BFGS iteration (strong-Wolfe line search, float64) of one ``C``;
the grid is fitted from the strongest regularisation to the weakest, each fit warm-started from
the last (the same minimum, fewer iterations), until the largest gradient entry is at most
``tol`` or ``max_iter`` iterations. Each finished fit is scored on dev; predictions use the one
with the best dev UAR (ties: the stronger regularisation), or the fit in progress before any is
finished. When every fit is done the step raises ``BudgetExhausted("converged")``, so the run's
``usage.stopped_by`` says ``converged`` and no step is spent after it. ``run_info["logreg"]``
records every fit.

A step reads the whole training set, not the loop's batch: ``usage.audio_seconds`` counts the
batches the loop drew, and ``run_info["logreg"]["train_audio_seconds"]`` the audio each step
really used.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from serbench import Batch, BuildContext, ConfigError
from serbench.nn import BudgetExhausted, LayerSelect, cached_stack, masked_mean

NAME = "logreg"


def parse_grid(text: Any) -> tuple[float, ...]:
    try:
        grid = tuple(float(c) for c in str(text).replace(" ", "").split(",") if c)
    except ValueError:
        grid = ()
    if not grid or any(not c > 0 for c in grid):
        raise ConfigError(f"method {NAME}: option c_values must be comma-separated positive "
                          f"inverse regularisation strengths like 0.01,0.1,1, got {text!r}")
    return tuple(sorted(set(grid)))


def uar(labels: torch.Tensor, predicted: torch.Tensor) -> float:
    """Mean recall over the classes present in ``labels``."""
    recalls = [float((predicted[labels == c] == c).double().mean()) for c in labels.unique()]
    return sum(recalls) / len(recalls)


class LogReg(nn.Module):
    """One ``(W, b)`` per ``C`` of the grid; ``chosen`` is the fit predictions use."""

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__()
        o = ctx.options
        if str(o["layer"]).strip() == "weighted":
            raise ConfigError(f"method {NAME}: option layer must be 'last' or a layer index (a "
                              "learnt layer weighting would make the problem non-convex)")
        self.layers = LayerSelect(ctx.upstream.num_layers, o["layer"], NAME)
        self.grid = parse_grid(o["c_values"])
        self.tol, self.max_iter = float(o["tol"]), int(o["max_iter"])
        dim, classes = ctx.upstream.hidden_size, ctx.num_classes
        self.weights = nn.ParameterList(
            nn.Parameter(torch.zeros(classes, dim, dtype=torch.float64)) for _ in self.grid)
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(classes, dtype=torch.float64)) for _ in self.grid)
        # buffers, so a checkpoint the loop restores says which fit its weights belong to
        self.register_buffer("chosen", torch.tensor(-1))  # -1: no fit finished yet
        self.register_buffer("progress", torch.tensor(0))  # the fit in progress
        self.data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.fits: list[dict[str, Any]] = []
        self.read: dict[str, Any] = {}  # what begin_stage read

    def pooled(self, batch: Batch) -> torch.Tensor:
        hidden, lengths = cached_stack(batch)
        return masked_mean(self.layers(hidden, batch.layers), lengths).double()

    def logits(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return torch.addmm(self.biases[index], x, self.weights[index].t())

    def objective(self, index: int) -> torch.Tensor:
        """Fit ``index``'s training objective over the whole training set."""
        x, y = self.data["train"]
        penalty = (self.weights[index] ** 2).sum() / (2.0 * self.grid[index] * len(y))
        return nn.functional.cross_entropy(self.logits(x, index), y) + penalty

    @torch.no_grad()
    def begin_stage(self, name: str, data: Any) -> None:
        """Read the training and dev splits, whole (metered as preparation)."""
        seconds = 0.0
        for split in ("train", "dev"):
            xs, ys = [], []
            for batch in data.batches(split):
                xs.append(self.pooled(batch.to(self.chosen.device)))
                ys.append(batch.labels.to(self.chosen.device))
                seconds += batch.audio_seconds if split == "train" else 0.0
            self.data[split] = (torch.cat(xs), torch.cat(ys))
        self.read = {"n_train": len(self.data["train"][1]), "n_dev": len(self.data["dev"][1]),
                     "train_audio_seconds": round(seconds, 3)}

    @property
    def run_info(self) -> dict[str, Any]:
        """What the run records: every fit, and the one the (possibly restored) model uses."""
        chosen = int(self.chosen)
        return {"logreg": {**self.read, "fits": list(self.fits),
                           "chosen_c": self.grid[chosen] if chosen >= 0 else None}}

    def loss(self, batch: Batch) -> torch.Tensor:
        """The full-batch objective of the fit in progress (the loop's batch is not used).

        Used without the loop's preparation step (``serbench validate method``), the model has
        read no split: the batch itself is then the training set, and fits are scored on it.
        """
        if "dev" not in self.data:
            with torch.no_grad():
                self.data["train"] = (self.pooled(batch), batch.labels.to(self.chosen.device))
        return self.objective(self.current)

    @property
    def current(self) -> int:
        return int(self.progress)

    def predict(self, batch: Batch) -> torch.Tensor:
        index = int(self.chosen) if int(self.chosen) >= 0 else self.current
        return self.logits(self.pooled(batch), index)

    @torch.no_grad()
    def finish(self, iterations: int, gradient: float) -> None:
        """Score the fit in progress on dev, keep it if it is the best, start the next."""
        index = self.current
        x, y = self.data.get("dev", self.data["train"])
        score = uar(y, self.logits(x, index).argmax(1))
        best = max((f["dev_uar"] for f in self.fits), default=-1.0)
        self.fits.append({"c": self.grid[index], "iterations": iterations,
                          "converged": gradient <= self.tol,
                          "max_gradient": float(f"{gradient:.3g}"),
                          "objective": round(float(self.objective(index)), 8),
                          "dev_uar": round(score, 6)})
        if score > best:
            self.chosen.fill_(index)
        self.progress += 1
        if self.current < len(self.grid):  # warm start: the same minimum, sooner
            self.weights[self.current].copy_(self.weights[index])
            self.biases[self.current].copy_(self.biases[index])

    def configure_optimizer(self) -> GridLBFGS:
        return GridLBFGS(self)


class GridLBFGS:
    """What the loop steps: one L-BFGS iteration of the fit in progress per ``step()``."""

    def __init__(self, model: LogReg) -> None:
        self.model = model
        self.iterations = 0
        self.lbfgs: torch.optim.LBFGS | None = None

    def params(self) -> list[nn.Parameter]:
        m = self.model
        return [m.weights[m.current], m.biases[m.current]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.model.zero_grad(set_to_none=set_to_none)

    def _gradient(self) -> float:
        """The largest gradient entry of the fit in progress at its current point."""
        grads: Iterable[torch.Tensor] = torch.autograd.grad(
            self.model.objective(self.model.current), self.params())
        return max(float(g.abs().max()) for g in grads)

    def step(self, closure: Any = None) -> None:
        m = self.model
        if m.current >= len(m.grid):
            raise BudgetExhausted("converged")
        gradient = self._gradient()
        if gradient <= m.tol or self.iterations >= m.max_iter:
            m.finish(self.iterations, gradient)
            self.iterations, self.lbfgs = 0, None
            if m.current >= len(m.grid):
                raise BudgetExhausted("converged")
        if self.lbfgs is None:
            # max_eval: torch gives the line search max_eval - 1 evaluations (default none)
            self.lbfgs = torch.optim.LBFGS(self.params(), lr=1.0, max_iter=1, max_eval=26,
                                           history_size=20, tolerance_grad=0.0,
                                           tolerance_change=0.0, line_search_fn="strong_wolfe")

        def objective() -> torch.Tensor:
            self.lbfgs.zero_grad()  # type: ignore[union-attr]
            value = m.objective(m.current)
            value.backward()
            return value

        self.lbfgs.step(objective)
        self.iterations += 1


def build_logreg(ctx: BuildContext) -> LogReg:
    return LogReg(ctx).to(ctx.device)
