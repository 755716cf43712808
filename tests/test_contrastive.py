"""contrastive_reg: estimators equal hand computations, negatives are never the same emotion when
the batch allows it, α = 0 is exactly the fusion baseline, transcripts are required up front."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from serbench_contrastive import estimators
from serbench_contrastive.model import ContrastiveReg, Fusion

from serbench import BuildContext, ConfigError
from serbench.data.features import cached_features
from serbench.data.feeds import CachedFeed
from serbench.data.view import load_dataset
from serbench.registry import collect
from serbench.run.execution import seed_everything
from serbench.run.planning import check_requirements, make_plan
from serbench.run.training import predict, train
from serbench.specs import Budget, Stage


def dot(a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A critic simple enough to compute by hand: the inner product."""
    return (a * t).sum(-1)


A = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
T = torch.tensor([[0.5, 0.0], [0.0, 1.0], [-1.0, 0.5]])
LABELS = torch.tensor([0, 1, 0])
NEG = torch.tensor([1, 0, 1])  # each utterance's text partner of another emotion


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_bce_discriminator_equals_the_hand_computation() -> None:
    # positives a_i·t_i: 0.5, 2.0, -0.5; negatives a_i·t_{n(i)}: a0·t1 = 0, a1·t0 = 0, a2·t1 = 1
    positive = (logsig(0.5) + logsig(2.0) + logsig(-0.5)) / 3
    negative = (logsig(-0.0) + logsig(-0.0) + logsig(-1.0)) / 3
    got = estimators.bce(dot, A, T, NEG)
    assert got.item() == pytest.approx(positive + negative, rel=1e-6)
    assert got.item() == pytest.approx(-1.42488, abs=1e-4)


def test_mine_is_the_dv_bound_with_a_moving_average_in_its_gradient() -> None:
    # batch 1: negatives a_i·t_{n(i)} = 0, 0, 1; batch 2 (audio doubled): 0, 0, 2
    m1, m2 = (2 + math.e) / 3, (2 + math.e**2) / 3
    average = estimators.MovingAverage(0.01)
    first = estimators.mine(dot, A, T, NEG, average)
    assert first.item() == pytest.approx((0.5 + 2.0 - 0.5) / 3 - math.log(m1), rel=1e-6)
    assert average.log_value.item() == pytest.approx(math.log(m1), rel=1e-6)
    audio = (2 * A).requires_grad_(True)
    second = estimators.mine(dot, audio, T, NEG, average)
    # float32: the value passes through (value - corrected) + corrected
    assert second.item() == pytest.approx((1.0 + 4.0 - 1.0) / 3 - math.log(m2), abs=1e-6)
    ema = 0.99 * m1 + 0.01 * m2
    assert average.log_value.item() == pytest.approx(math.log(ema), rel=1e-6)
    second.backward()
    # ∂/∂a_i = t_i / 3 − exp(a_i·t_{n(i)}) t_{n(i)} / (3 · EMA): the EMA, not the batch's m2
    by_hand = torch.tensor([[0.5 / 3, -1 / (3 * ema)],
                            [-0.5 / (3 * ema), 1 / 3],
                            [-1 / 3, 0.5 / 3 - math.e**2 / (3 * ema)]])
    torch.testing.assert_close(audio.grad, by_hand)
    # rate 1 keeps only the batch: the plain gradient of the bound, which differs
    plain = (2 * A).requires_grad_(True)
    estimators.mine(dot, plain, T, NEG, estimators.MovingAverage(1.0)).backward()
    uncorrected = torch.tensor([[0.5 / 3, -1 / (3 * m2)], [-0.5 / (3 * m2), 1 / 3],
                                      [-1 / 3, 0.5 / 3 - math.e**2 / (3 * m2)]])
    torch.testing.assert_close(plain.grad, uncorrected)
    assert not torch.allclose(plain.grad, audio.grad)


def test_infonce_equals_the_published_bound_by_hand() -> None:
    # scores a_i·t_j: row0 [0.5, 0, -1], row1 [0, 2, 1], row2 [0.5, 1, -0.5]
    scores = A @ T.T
    rows = [0.5 - math.log(math.exp(0.5) + math.exp(0.0) + math.exp(-1.0)),
            2.0 - math.log(math.exp(0.0) + math.exp(2.0) + math.exp(1.0)),
            -0.5 - math.log(math.exp(0.5) + math.exp(1.0) + math.exp(-0.5))]
    got = estimators.infonce(scores)
    assert got.item() == pytest.approx(math.log(3) + sum(rows) / 3, rel=1e-6)
    assert got.item() == pytest.approx(0.05999, abs=1e-4)
    # other_emotions: texts of the same emotion (0 and 2) leave each other's rows
    rows = [math.log(2) + 0.5 - math.log(math.exp(0.5) + math.exp(0.0)),
            math.log(3) + 2.0 - math.log(math.exp(0.0) + math.exp(2.0) + math.exp(1.0)),
            math.log(2) - 0.5 - math.log(math.exp(1.0) + math.exp(-0.5))]
    allowed = LABELS[:, None] != LABELS[None, :]
    assert estimators.infonce(scores, allowed).item() == pytest.approx(sum(rows) / 3, abs=1e-6)


def test_the_model_uses_the_published_estimators_by_default() -> None:
    fbank = collect().upstreams.get("fbank")
    defaults = collect().methods.get("contrastive_reg").defaults
    assert (defaults["mine_ema_rate"], defaults["infonce_negatives"]) == (0.01, "all")
    model = ContrastiveReg(_context(fbank, estimator="infonce"))
    assert not hasattr(model, "critic_net")  # no joint MLP: the bilinear critic a W tᵀ
    with torch.no_grad():
        model.bilinear.weight.copy_(torch.eye(32))
    audio, text = torch.zeros(3, 32), torch.zeros(3, 32)
    audio[:, :2], text[:, :2] = A, T
    estimate = model.estimate(audio, text, LABELS)
    assert estimate.item() == pytest.approx(estimators.infonce(A @ T.T).item(), rel=1e-6)
    with pytest.raises(ConfigError, match=r"option infonce_negatives must be one of all, "
                                          r"other_emotions, got 'none'"):
        ContrastiveReg(_context(fbank, estimator="infonce", infonce_negatives="none"))
    with pytest.raises(ConfigError, match=r"option mine_ema_rate must be in \(0, 1\] \(1: no "
                                          r"bias correction\), got 0"):
        ContrastiveReg(_context(fbank, estimator="mine", mine_ema_rate=0))


def test_serbench_list_methods_names_the_estimators_forms(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from serbench.cli import main

    assert main(["list", "methods", "--json"]) == 0  # the table wraps to the terminal's width
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    first = rows["contrastive_reg"]["description"].splitlines()[0]
    assert "mine (EMA bias-corrected), infonce (bilinear critic, all in-batch negatives)" in first


def test_negatives_are_never_the_same_emotion_when_the_batch_allows() -> None:
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        labels = torch.randint(0, 4, (int(torch.randint(2, 12, (1,), generator=g)),),
                               generator=g)
        if labels.unique().numel() < 2:
            continue
        partners = estimators.negative_partners(labels, g)
        assert (labels[partners] != labels).all(), (trial, labels, partners)
    # one emotion only: another utterance, never itself; a batch of one has no partner
    same = estimators.negative_partners(torch.tensor([2, 2, 2]), g)
    assert (same != torch.arange(3)).all() and (same >= 0).all()
    assert estimators.negative_partners(torch.tensor([1]), g).tolist() == [-1]
    # seeded: the same generator seed gives the same partners
    draw = [estimators.negative_partners(torch.tensor([0, 1, 2, 0, 1, 2]),
                                         torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*draw)


def _context(upstream, seed: int = 0, **options) -> BuildContext:
    comps = collect()
    method = comps.methods.get("contrastive_reg")
    labels = ("angry", "happy", "neutral", "sad")
    return BuildContext(labels=labels, options={**method.defaults, "hidden": 32, **options},
                        upstream=upstream, dataset=comps.datasets.get("emodb"), device="cpu",
                        seed=seed, finetune_upstream=False, load_upstream=lambda: None,
                        text_encoder=comps.upstreams.get, stages=method.stages)


def _pooled_fbank_feed(emodb_root: Path) -> tuple[CachedFeed, tuple[str, ...]]:
    comps = collect()
    dataset = comps.datasets.get("emodb")
    utts = [u for u in dataset.load_manifest(emodb_root, dataset.options)
            if u.label in ("angry", "happy", "neutral", "sad")]
    pick = {spk: [u for u in utts if u.speaker == spk][:12] for spk in ("03", "08", "09", "10")}
    splits = {"train": pick["03"] + pick["08"], "dev": pick["09"], "test": pick["10"]}
    labels = ("angry", "happy", "neutral", "sad")
    entry = cached_features(comps.upstreams.get("fbank"), "emodb", emodb_root,
                            [u for s in splits.values() for u in s], "cpu", need_frames=False,
                            quiet=True)
    feed = CachedFeed(entry, splits, {lab: i for i, lab in enumerate(labels)}, 15.0,
                      pooled=True, normalize="none")
    return feed, labels


def _trained_predictions(model_cls, ctx: BuildContext, feed: CachedFeed,
                         labels: tuple[str, ...]) -> torch.Tensor:
    seed_everything(0)
    model = model_cls(ctx)
    budget = Budget("t", max_steps=12, batch_seconds=15.0, max_device_seconds=120.0,
                    eval_every=6)
    train(model, feed, budget, (Stage("train", 1.0),), 1e-3, torch.device("cpu"), 0, labels)
    _, _, scores = predict(model, feed.evaluate("test"), torch.device("cpu"), budget)
    return torch.from_numpy(scores)


def test_alpha_zero_is_exactly_the_fusion_baseline(emodb_root: Path) -> None:
    feed, labels = _pooled_fbank_feed(emodb_root)
    fbank = collect().upstreams.get("fbank")
    baseline = _trained_predictions(lambda c: Fusion(c), _context(fbank, alpha=0.0), feed,
                                    labels)
    alpha0 = _trained_predictions(ContrastiveReg, _context(fbank, alpha=0.0), feed, labels)
    regularised = _trained_predictions(ContrastiveReg, _context(fbank, alpha=0.5), feed, labels)
    assert baseline.shape == (12, 4)
    assert torch.equal(alpha0, baseline)
    assert not torch.allclose(regularised, baseline)


def test_the_loss_mixes_cross_entropy_and_the_estimate(emodb_root: Path) -> None:
    feed, labels = _pooled_fbank_feed(emodb_root)
    fbank = collect().upstreams.get("fbank")
    torch.manual_seed(0)
    model = ContrastiveReg(_context(fbank, alpha=0.3, dropout=0.0))
    batch = next(feed.train(0))
    state = model.generator.get_state()
    loss = model.loss(batch)
    model.generator.set_state(state)  # the same negatives again
    audio, text = model.codes(batch)
    ce = torch.nn.functional.cross_entropy(model.logits(audio, text), batch.labels)
    estimate = model.estimate(audio, text, batch.labels)
    torch.testing.assert_close(loss, 0.7 * ce - 0.3 * estimate)
    assert estimate.item() < 0  # log D + log(1 - D) is negative


def test_bad_options_and_missing_transcripts_fail_before_compute(data_root: Path) -> None:
    fbank = collect().upstreams.get("fbank")
    with pytest.raises(ConfigError, match=r"option estimator must be one of bce, mine, infonce, "
                                          r"got 'jsd'"):
        ContrastiveReg(_context(fbank, estimator="jsd"))
    with pytest.raises(ConfigError, match=r"option alpha must be in \[0, 1\], got 1.5"):
        ContrastiveReg(_context(fbank, alpha=1.5))
    comps = collect()
    plan = make_plan(comps, methods=["contrastive_reg"], upstreams=["egemaps"], dataset="emodb",
                     data_root=data_root, folds=["0"])
    data = load_dataset(comps, "emodb", data_root, None, {})
    data.utterances = [dataclasses.replace(u, text=None) for u in data.utterances]
    with pytest.raises(ConfigError) as err:
        check_requirements(plan.runs[0].condition, data, comps)
    assert str(err.value) == ("method 'contrastive_reg' on dataset 'emodb': the method needs "
                              "transcripts, which this dataset lacks")
