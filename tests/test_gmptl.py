"""GMP-TL: AM-Softmax by hand, seeded k-means pseudo-labels on real EmoDB frames, the frame loss's
padding, requirements checked before compute, and the four stages inside one budget."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from serbench_gmptl import losses
from serbench_gmptl.kmeans import Lloyd, assign

from serbench import Batch, BuildContext, ConfigError
from serbench.data.features import cached_features
from serbench.data.feeds import CachedFeed
from serbench.registry import collect
from serbench.run.planning import make_plan
from serbench.run.training import train
from serbench.specs import Budget

SMALL = {"finetune_upstream": False, "k_values": "4,8,16", "cluster_frames": 600,
         "hidden": 16, "encoder_layers": 2}


def _real_feed(emodb_root: Path) -> tuple[CachedFeed, tuple[str, ...], BuildContext]:
    """fbank frames of 32 real EmoDB files: speakers 03 and 08 train, 09 dev, 10 test."""
    comps = collect()
    dataset = comps.datasets.get("emodb")
    utts = dataset.load_manifest(emodb_root, dataset.options)
    pick = {spk: [u for u in utts if u.speaker == spk][:n]
            for spk, n in (("03", 10), ("08", 10), ("09", 6), ("10", 6))}
    splits = {"train": pick["03"] + pick["08"], "dev": pick["09"], "test": pick["10"]}
    fbank = comps.upstreams.get("fbank")
    entry = cached_features(fbank, "emodb", emodb_root, [u for s in splits.values() for u in s],
                            "cpu", quiet=True)
    labels = tuple(sorted({u.label for s in splits.values() for u in s}))
    feed = CachedFeed(entry, splits, {lab: i for i, lab in enumerate(labels)}, 20.0,
                      pooled=False, normalize="none")
    return feed, labels, _context(labels, fbank)


def _context(labels: tuple[str, ...], upstream, seed: int = 0, **options) -> BuildContext:
    comps = collect()
    method = comps.methods.get("gmp_tl")
    return BuildContext(labels=labels, options={**method.defaults, **SMALL, **options},
                        upstream=upstream, dataset=comps.datasets.get("emodb"), device="cpu",
                        seed=seed, finetune_upstream=False, load_upstream=lambda: None,
                        text_encoder=lambda name: None, stages=method.stages)


class OneEpoch:
    """What ``begin_stage`` gets from the loop: the training batches, once."""

    def __init__(self, feed: CachedFeed, seed: int = 0) -> None:
        self.feed, self.seed = feed, seed

    def train_batches(self, epochs: int = 1):
        it = self.feed.train(self.seed)
        for _ in range(self.feed.batches_per_epoch * epochs):
            yield next(it)


def test_am_softmax_equals_the_hand_computed_value() -> None:
    cos = torch.tensor([[0.2, 0.1, -0.2], [0.3, 0.25, 0.0]])
    labels = torch.tensor([0, 1])
    # s = 30, m = 0.2, the margin taken from the true class's cosine only:
    # logits [30 (0.2 - 0.2), 3, -6] = [0, 3, -6] and [9, 30 (0.25 - 0.2), 0] = [9, 1.5, 0]
    row0 = -0.0 + math.log(math.exp(0.0) + math.exp(3.0) + math.exp(-6.0))
    row1 = -1.5 + math.log(math.exp(9.0) + math.exp(1.5) + math.exp(0.0))
    got = losses.am_softmax(cos, labels, scale=30.0, margin=0.2)
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert got.item() == pytest.approx(5.27469, abs=1e-4)
    # cosines ignore the lengths of embeddings and class weights
    emb, w = torch.tensor([[3.0, 4.0]]), torch.tensor([[2.0, 0.0], [0.0, 0.5]])
    assert losses.cosine_logits(emb, w)[0].tolist() == pytest.approx([0.6, 0.8])


def test_frame_loss_counts_valid_frames_only() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4)
    pad = losses.IGNORE
    targets = torch.tensor([[1, 2, 3, pad, pad], [0, 1, 2, 3, 0]])
    by_hand = [-torch.log_softmax(logits[0, t], 0)[c] for t, c in enumerate([1, 2, 3])]
    by_hand += [-torch.log_softmax(logits[1, t], 0)[c] for t, c in enumerate([0, 1, 2, 3, 0])]
    expected = torch.stack(by_hand).mean()
    garbage = logits.clone()
    garbage[0, 3:] = 1e4 * torch.randn(2, 4)  # whatever the model says on padding
    for lg in (logits, garbage):
        torch.testing.assert_close(losses.frame_loss([lg], [targets]), expected)


def test_model_frame_loss_is_the_same_padded_or_alone(emodb_root: Path) -> None:
    feed, labels, ctx = _real_feed(emodb_root)
    torch.manual_seed(0)
    model = collect().methods.get("gmp_tl").build(ctx)
    model.begin_stage("cluster", OneEpoch(feed))
    batch = next(feed.train(0))
    assert batch.lengths.min() < batch.lengths.max()  # the batch is padded
    model.eval()
    with torch.no_grad():
        padded = model.loss(batch)
        alone = []
        for i, n in enumerate(batch.lengths.tolist()):
            one = Batch(keys=[batch.keys[i]], labels=batch.labels[i : i + 1],
                        lengths=batch.lengths[i : i + 1], speakers=[batch.speakers[i]],
                        features=[f[i : i + 1, :n] for f in batch.features],
                        genders=batch.genders[i : i + 1])
            alone.append((model.loss(one), n))
    total = sum(n for _, n in alone)
    torch.testing.assert_close(padded, sum(loss * n for loss, n in alone) / total,
                               rtol=1e-4, atol=1e-5)


def test_kmeans_pseudo_labels_are_seeded_and_use_every_declared_cluster(emodb_root: Path
                                                                        ) -> None:
    feed, labels, ctx = _real_feed(emodb_root)

    def cluster(seed: int):
        torch.manual_seed(0)  # the same stage-1 model; only the clustering seed varies
        model = collect().methods.get("gmp_tl").build(ctx)
        model.seed = seed
        model.begin_stage("cluster", OneEpoch(feed))
        return model

    a, b, c = cluster(0), cluster(0), cluster(1)
    assert a.clustered and not any("labeller" in n for n in a.state_dict())
    batches = list(OneEpoch(feed).train_batches())
    seen = {k: set() for k in (4, 8, 16)}
    for batch in batches:
        ours, again, other = (m.pseudo_labels(batch) for m in (a, b, c))
        for scale, k in enumerate((4, 8, 16)):
            valid = torch.arange(ours[scale].shape[1])[None, :] < batch.lengths[:, None]
            assert ((ours[scale] >= 0) == valid).all()  # padded frames carry IGNORE
            assert ours[scale].max() < k
            assert torch.equal(ours[scale], again[scale])
            seen[k] |= set(ours[scale][valid].tolist())
    assert {k: sorted(v) for k, v in seen.items()} == {k: list(range(k)) for k in seen}
    for scale, k in enumerate((4, 8, 16)):
        assert a.centroids()[scale].shape == (k, 16)
        assert torch.equal(a.centroids()[scale], b.centroids()[scale])
    assert not torch.equal(a.centroids()[2], c.centroids()[2])
    # the labels come from the frozen stage-1 model: training the model on does not move them
    before = a.pseudo_labels(batches[0])
    with torch.no_grad():
        for p in a.parameters():
            p.add_(1.0)
    assert all(torch.equal(x, y) for x, y in zip(before, a.pseudo_labels(batches[0]),
                                                 strict=True))


def test_kmeans_recovers_separated_clusters_and_rejects_too_few_frames() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    run = Lloyd(x, 3, seed=3)
    while not run.converged:
        run.step()
    found, labels = run.centroids, run.labels
    assert sorted(labels.bincount().tolist()) == [50, 50, 50]
    order = found[:, 0] * 2 + found[:, 1]  # (0,0) < (0,10) < (10,0)
    torch.testing.assert_close(found[order.argsort()], centres[[0, 2, 1]], atol=0.1, rtol=0)
    with pytest.raises(ConfigError, match=r"k-means with K=8 needs at least 8 frames, got 5"):
        Lloyd(x[:5], 8, seed=0)


def test_lloyd_iterates_until_at_most_a_thousandth_of_the_points_move() -> None:
    x = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    run = Lloyd(x, 16, seed=1)
    assert not run.converged and run.iterations == 0
    moved = []
    while not run.converged:
        before = run.labels.clone()
        run.step()
        moved.append(int((run.labels != before).sum()))
        assert run.moved == moved[-1] / 4000
    # every iteration but the last moved more than 4 of the 4,000 points (0.1 %); far more
    # iterations than the 10 the clustering used to stop at
    assert all(m > 4 for m in moved[:-1]) and moved[-1] <= 4
    assert run.iterations == len(moved) == 39
    # inertia: the squared distances of the points to the centroids they are assigned
    labels, dists = assign(x, run.centroids)
    assert torch.equal(labels, run.labels)
    assert run.inertia == pytest.approx(float(dists.double().sum()), rel=1e-9)
    assert run.summary() == {"k": 16, "iterations": 39, "inertia": round(run.inertia, 4),
                             "moved": moved[-1] / 4000, "converged": True}


def _train_frames(model, feed: CachedFeed) -> tuple[torch.Tensor, set[str]]:
    """Every valid frame of the clustered layer over the training split, and its speakers."""
    frames, speakers = [], set()
    for batch in OneEpoch(feed).train_batches():
        x, lengths = model.layer_frames(batch)
        frames.append(x[torch.arange(x.shape[1])[None, :] < lengths[:, None]])
        speakers |= set(batch.speakers)
    return torch.cat(frames), speakers


def test_clustering_samples_every_training_utterance_and_records_each_fit(emodb_root: Path
                                                                          ) -> None:
    feed, labels, _ = _real_feed(emodb_root)
    fbank = collect().upstreams.get("fbank")
    torch.manual_seed(0)
    model = collect().methods.get("gmp_tl").build(_context(labels, fbank, cluster_frames=300))
    model.begin_stage("cluster", OneEpoch(feed))
    every, speakers = _train_frames(model, feed)
    assert speakers == {"03", "08"} and len(every) == 3485
    info = model.run_info["kmeans"]
    # 300 frames drawn from all 3,485: every one of the 20 training files and both speakers
    # contribute (the first batches holding 4 x 300 frames, as before, were a third of the files)
    assert {k: info[k] for k in ("layer", "frames", "frames_seen", "utterances",
                                 "utterances_seen", "speakers", "speakers_seen", "stopped_by")
            } == {"layer": 1, "frames": 300, "frames_seen": 3485, "utterances": 20,
                  "utterances_seen": 20, "speakers": 2, "speakers_seen": 2,
                  "stopped_by": "converged"}
    assert [s["k"] for s in info["scales"]] == [4, 8, 16]
    assert all(s["converged"] and s["moved"] <= 0.001 and s["iterations"] >= 2
               and s["inertia"] > 0 for s in info["scales"])


def test_clustering_uses_every_frame_when_fewer_than_asked_and_caps_iterations(
        emodb_root: Path) -> None:
    feed, labels, _ = _real_feed(emodb_root)
    fbank = collect().upstreams.get("fbank")
    torch.manual_seed(0)
    model = collect().methods.get("gmp_tl").build(
        _context(labels, fbank, cluster_frames=10**6, kmeans_iters=2))
    model.begin_stage("cluster", OneEpoch(feed))
    every, _ = _train_frames(model, feed)
    info = model.run_info["kmeans"]
    assert info["frames"] == info["frames_seen"] == len(every)
    assert info["stopped_by"] == "kmeans_iters"
    assert [(s["iterations"], s["converged"]) for s in info["scales"]] == [(2, False)] * 3
    for scale, centroids in zip(info["scales"], model.centroids(), strict=True):
        # the recorded inertia is that of the kept centroids over every training frame
        inertia = float(assign(every, centroids)[1].double().sum())
        assert scale["inertia"] == pytest.approx(inertia, rel=1e-4)


def test_needs_frames_and_gender_before_any_compute(data_root: Path) -> None:
    with pytest.raises(ConfigError) as err:
        make_plan(collect(), methods=["gmp_tl"], upstreams=["egemaps"], dataset="emodb",
                  data_root=data_root, options={"finetune_upstream": "false"})
    assert str(err.value) == (
        "method 'gmp_tl' needs frame-level features, but upstream 'egemaps' gives one vector "
        "per utterance; choose a frame-level upstream")
    assert collect().methods.get("gmp_tl").requires == frozenset({"frames", "gender"})


def test_bad_options_are_one_line_errors(emodb_root: Path) -> None:
    fbank = collect().upstreams.get("fbank")
    with pytest.raises(ConfigError, match=r"option k_values must be comma-separated cluster "
                                          r"counts >= 2 like 50,100,200, got '50;100'"):
        collect().methods.get("gmp_tl").build(_context(("a", "b"), fbank, k_values="50;100"))
    with pytest.raises(ConfigError, match=r"cluster_layer must be 'middle', 'last' or an index "
                                          r"in \[-3, 2\] \(3 layers to cluster\), got '7'"):
        collect().methods.get("gmp_tl").build(_context(("a", "b"), fbank, cluster_layer="7"))


@pytest.mark.parametrize("limits", [{"max_steps": 20, "max_device_seconds": 300.0},
                                    {"max_steps": 100000, "max_device_seconds": 12.0}])
def test_the_four_stages_never_exceed_the_budget(emodb_root: Path, limits: dict) -> None:
    feed, labels, ctx = _real_feed(emodb_root)
    budget = Budget("t", batch_seconds=20.0, eval_every=1000, **limits)
    method = collect().methods.get("gmp_tl")
    torch.manual_seed(0)
    model = method.build(ctx)
    usage = train(model, feed, budget, method.stages, 1e-3, torch.device("cpu"), 0, labels)
    stages = usage.stages
    assert [s["name"] for s in stages] == ["multitask", "cluster", "frames", "utterance"]
    assert usage.steps == sum(s["steps"] for s in stages) <= budget.max_steps
    assert all(s["steps"] <= s["max_steps"] for s in stages)
    assert sum(s["max_device_seconds"] for s in stages) == pytest.approx(
        budget.max_device_seconds)
    # a step interrupted by the timer may overrun its stage by the alarm's 50 ms grace
    assert all(s["device_seconds"] <= s["max_device_seconds"] + 0.2 for s in stages)
    assert usage.device_seconds <= budget.max_device_seconds + 0.5
    assert model.stage == "utterance" and model.clustered
    if budget.max_steps == 20:
        assert [s["max_steps"] for s in stages] == [6, 1, 6, 7]
        assert usage.stopped_by == "max_steps" and usage.steps == 20
    else:
        assert usage.stopped_by == "max_device_seconds"


def test_a_finetuned_upstream_runs_every_stage_and_is_trained(emodb_root: Path,
                                                              tmp_path: Path) -> None:
    from serbench.data.audio import load_audio
    from serbench.data.feeds import AudioFeed
    from serbench.testing import tiny_transformers_model

    upstream = collect().upstreams.get(f"hf:{tiny_transformers_model('hubert', tmp_path)}")
    dataset = collect().datasets.get("emodb")
    utts = dataset.load_manifest(emodb_root, dataset.options)
    pick = {spk: [u for u in utts if u.speaker == spk][:n]
            for spk, n in (("03", 4), ("08", 4), ("09", 2), ("10", 2))}
    splits = {"train": pick["03"] + pick["08"], "dev": pick["09"], "test": pick["10"]}
    waves = {u.key: load_audio(emodb_root / u.path, 16000) for s in splits.values() for u in s}
    labels = tuple(sorted({u.label for s in splits.values() for u in s}))
    feed = AudioFeed(waves, splits, {lab: i for i, lab in enumerate(labels)}, 20.0)
    method = collect().methods.get("gmp_tl")
    ctx = BuildContext(labels=labels, options={**method.defaults, "k_values": "3,6",
                                               "cluster_frames": 100},
                       upstream=upstream, dataset=dataset, device="cpu", seed=0,
                       finetune_upstream=True, load_upstream=lambda: upstream.loader("cpu"),
                       text_encoder=lambda name: None, stages=method.stages)
    torch.manual_seed(0)
    model = method.build(ctx)
    assert model.encoder is None and model.cluster_layer == 1  # the middle of 3 hidden states
    before = {n: p.detach().clone() for n, p in model.upstream.named_parameters()}
    budget = Budget("t", max_steps=8, batch_seconds=20.0, max_device_seconds=600.0,
                    eval_every=100)
    usage = train(model, feed, budget, method.stages, 1e-3, torch.device("cpu"), 0, labels)
    assert [s["steps"] for s in usage.stages] == [2, 0, 2, 4]
    batch = next(feed.train(0))
    labels = model.pseudo_labels(batch)
    frames = [(len(waves[k]) - 400) // 320 + 1 for k in batch.keys]  # 20 ms hop, 25 ms window
    assert [int((labels[0][i] >= 0).sum()) for i in range(batch.size)] == frames
    assert len(labels) == 2 and int(labels[1].max()) < 6
    changed = [n for n, p in model.upstream.named_parameters() if not torch.equal(p, before[n])]
    assert changed  # the upstream itself was fine-tuned


def test_other_stage_shares_are_another_registered_method() -> None:
    from serbench_gmptl import method_spec

    from serbench.run.training import allocate

    default = collect().methods.get("gmp_tl")
    assert [(s.name, s.share) for s in default.stages] == [
        ("multitask", 0.3), ("cluster", 0.05), ("frames", 0.3), ("utterance", 0.35)]
    variant = method_spec("gmp_tl_long_cluster", (0.25, 0.1, 0.3, 0.35))
    budget = Budget("t", max_steps=20, batch_seconds=10.0, max_device_seconds=100.0)
    assert [(s, round(t, 6)) for _, s, t in allocate(budget, variant.stages)] == [
        (5, 25.0), (2, 10.0), (6, 30.0), (7, 35.0)]
    assert variant.defaults == default.defaults and variant.requires == default.requires
    with pytest.raises(ValueError, match="GMP-TL has 4 stages, got 3 shares"):
        method_spec("bad", (0.5, 0.25, 0.25))
