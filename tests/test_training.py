"""The budgeted loop: first limit wins, the best dev checkpoint is kept, nobody overspends."""

from __future__ import annotations

import time

import pytest
import torch

from serbench.run.budgets import budget_from_mapping, load_budget_file, resolve_budget
from serbench.run.training import Feed, allocate, train
from serbench.specs import Batch, Budget, ConfigError, Stage

LABELS = ("a", "b")


class ToyFeed(Feed):
    """Two separable classes in 4 dims; batches of 8 utterances of one second each."""

    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(n) % 2
        self.x = torch.randn(n, 1, 4, generator=g) + 3.0 * self.y[:, None, None]
        self.batches_per_epoch = n // 8

    def _batch(self, idx: torch.Tensor) -> Batch:
        b = Batch(keys=[str(int(i)) for i in idx], labels=self.y[idx],
                  lengths=torch.ones(len(idx), dtype=torch.long), speakers=["s"] * len(idx),
                  features=[self.x[idx]])
        b.audio_seconds = float(len(idx))
        return b

    def train(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        while True:
            for chunk in torch.randperm(len(self.y), generator=g).split(8):
                yield self._batch(chunk)

    def evaluate(self, split: str):
        for chunk in torch.arange(len(self.y)).split(16):
            yield self._batch(chunk)


class Probe(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(4, 2)
        self.calls = 0

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.head(batch.features[0][:, 0])

    def loss(self, batch: Batch) -> torch.Tensor:
        self.calls += 1
        return torch.nn.functional.cross_entropy(self.predict(batch), batch.labels)


def budget(**kw) -> Budget:
    base = dict(name="t", max_steps=30, batch_seconds=8.0, max_device_seconds=60.0, eval_every=10)
    base.update(kw)
    return Budget(**base)


def test_stops_at_max_steps_and_records_usage() -> None:
    model = Probe()
    usage = train(model, ToyFeed(), budget(), (Stage("train", 1.0),), 0.05, torch.device("cpu"),
                  0, LABELS)
    assert usage.steps == 30 and model.calls == 30
    assert usage.stopped_by == "max_steps"
    assert usage.audio_seconds == 30 * 8.0
    assert usage.evaluations == 3  # steps 10, 20, 30
    assert 0 < usage.device_seconds < 60 and usage.peak_memory_mb > 0
    assert usage.best_dev_uar is not None and usage.best_dev_uar > 0.9


class SlowProbe(Probe):
    """A method that tries to spend more than its budget: every step takes 0.2 s."""

    def loss(self, batch: Batch) -> torch.Tensor:
        time.sleep(0.2)
        return super().loss(batch)


def test_a_method_cannot_spend_more_device_seconds_than_its_budget() -> None:
    model = SlowProbe()
    start = time.perf_counter()
    usage = train(model, ToyFeed(), budget(max_steps=10_000, max_device_seconds=1.0),
                  (Stage("train", 1.0),), 0.05, torch.device("cpu"), 0, LABELS)
    wall = time.perf_counter() - start
    assert usage.stopped_by == "max_device_seconds"
    assert usage.steps <= 5
    assert usage.device_seconds <= 1.0 + 0.3
    assert wall < 5.0


class GreedyPreparation(Probe):
    """A multi-stage method whose preparation step tries to read the training data forever."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def begin_stage(self, name: str, data) -> None:
        if name == "prepare":
            for _ in data.train_batches(epochs=10_000):
                self.seen += 1
                time.sleep(0.01)


def test_a_preparation_step_is_metered_against_its_stage_share() -> None:
    model = GreedyPreparation()
    stages = (Stage("prepare", 0.25), Stage("train", 0.75))
    usage = train(model, ToyFeed(), budget(max_steps=40, max_device_seconds=2.0), stages, 0.05,
                  torch.device("cpu"), 0, LABELS)
    prepare, trained = usage.stages
    assert prepare["name"] == "prepare" and prepare["device_seconds"] <= 0.5 + 0.3
    assert prepare["steps"] == 0 and trained["steps"] == 30  # 40 - int(40 * 0.25)
    assert usage.steps == 30
    assert usage.device_seconds <= 2.0 + 0.3


def test_stage_allocation_never_exceeds_the_budget() -> None:
    b = budget(max_steps=101, max_device_seconds=10.0)
    parts = allocate(b, (Stage("a", 0.3), Stage("b", 0.05), Stage("c", 0.3), Stage("d", 0.35)))
    assert sum(p[1] for p in parts) == 101
    assert sum(p[2] for p in parts) == pytest.approx(10.0)
    with pytest.raises(ConfigError, match="sum to 1"):
        allocate(b, (Stage("a", 0.5), Stage("b", 0.6)))


def test_the_best_dev_checkpoint_is_restored() -> None:
    class Diverging(Probe):
        """Learns, then is pushed away from the solution by an absurd step at the end."""

        def loss(self, batch: Batch) -> torch.Tensor:
            self.calls += 1
            loss = super().loss(batch)
            return -1000.0 * loss if self.calls > 20 else loss

    model = Diverging()
    usage = train(model, ToyFeed(), budget(max_steps=30), (Stage("train", 1.0),), 0.05,
                  torch.device("cpu"), 0, LABELS)
    assert usage.best_step in (10, 20)
    feed = ToyFeed()
    with torch.no_grad():
        acc = torch.cat([(model.predict(b).argmax(1) == b.labels).float()
                         for b in feed.evaluate("dev")]).mean()
    assert float(acc) == pytest.approx(usage.best_dev_uar, abs=0.02)


def test_budgets_from_yaml_are_validated(tmp_path) -> None:
    good = tmp_path / "b.yaml"
    good.write_text("tiny:\n  base: smoke\n  max_steps: 5\nlong:\n  max_steps: 10\n"
                    "  batch_seconds: 30\n  max_device_seconds: 60\n  precision: bf16\n")
    budgets = load_budget_file(good)
    assert budgets["tiny"].max_steps == 5 and budgets["tiny"].batch_seconds == 60.0
    assert budgets["long"].precision == "bf16"
    assert resolve_budget("tiny", budgets).name == "tiny"
    with pytest.raises(ConfigError, match=r"max_steps must be a positive integer, got -3"):
        budget_from_mapping("neg", {"base": "smoke", "max_steps": -3})
    with pytest.raises(ConfigError, match=r"unknown key 'max_step' \(known: "):
        budget_from_mapping("typo", {"base": "smoke", "max_step": 3})
    with pytest.raises(ConfigError, match=r"batch_seconds must be a positive number, got 'ten'"):
        budget_from_mapping("type", {"base": "smoke", "batch_seconds": "ten"})
    with pytest.raises(ConfigError, match=r"unknown budget 'probes': did you mean 'probe'\?"):
        resolve_budget("probes")


def _summed(seconds: float) -> float:
    """What torchrun's all-reduce gives one rank in a world of one: its own seconds, but with
    the timer off, as under DDP."""
    return seconds


class SlowerProbe(Probe):
    """Every step takes 0.3 s."""

    def loss(self, batch: Batch) -> torch.Tensor:
        time.sleep(0.3)
        return super().loss(batch)


def test_the_device_seconds_limit_holds_without_a_timer_as_under_ddp() -> None:
    usage = train(SlowerProbe(), ToyFeed(), budget(max_steps=10_000, max_device_seconds=1.0),
                  (Stage("train", 1.0),), 0.05, torch.device("cpu"), 0, LABELS,
                  share_seconds=_summed)
    assert usage.stopped_by == "max_device_seconds"
    # three steps fit; a fourth would end at 1.2 s, so the loop stops before it
    assert usage.steps == 3
    assert usage.stages[0]["device_seconds"] <= 1.0


def test_a_preparation_step_stops_at_its_share_without_a_timer() -> None:
    class Preparation(GreedyPreparation):
        def begin_stage(self, name: str, data) -> None:
            if name == "prepare":
                for _ in data.train_batches(epochs=50):  # 400 batches, 4 s
                    self.seen += 1
                    time.sleep(0.01)

    model = Preparation()
    usage = train(model, ToyFeed(), budget(max_steps=40, max_device_seconds=2.0),
                  (Stage("prepare", 0.25), Stage("train", 0.75)), 0.05, torch.device("cpu"), 0,
                  LABELS, share_seconds=_summed)
    assert usage.stages[0]["device_seconds"] <= 0.5 + 0.05
    assert model.seen < 60


class SlowPredictions(Probe):
    """Steps of 0.1 s for 8 utterances; predictions of 0.05 s per 16 utterances."""

    def loss(self, batch: Batch) -> torch.Tensor:
        time.sleep(0.1)
        return super().loss(batch)

    def predict(self, batch: Batch) -> torch.Tensor:
        if not self.training:
            time.sleep(0.05)
        return super().predict(batch)


def test_building_and_the_closing_evaluation_count_against_the_limit() -> None:
    # 0.4 s already spent building; the last dev evaluation (64 utterances, 0.2 s) and a test
    # set of 64 must fit too: the loop keeps their seconds back (measured on the dev evaluations
    # every 5 steps) and stops early
    usage = train(SlowPredictions(), ToyFeed(), budget(max_steps=10_000, max_device_seconds=2.0,
                                                       eval_every=5),
                  (Stage("train", 1.0),), 0.05, torch.device("cpu"), 0, LABELS,
                  spent=0.4, closing_items=128)
    assert usage.build_seconds == 0.4
    assert usage.stopped_by == "max_device_seconds"
    assert usage.device_seconds == pytest.approx(
        0.4 + usage.stages[0]["device_seconds"] + usage.eval_seconds - 0.2 * (
            usage.evaluations - 1), abs=0.01)
    # the test prediction (about 0.2 s more) still fits in the 2 s
    assert usage.device_seconds + 0.2 <= 2.0
    assert 8 <= usage.steps <= 10
