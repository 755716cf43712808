"""Feeds: the pooled shortcut is exact for ``linear``, normalisation is right, batches are shared.

The features come from a real cache entry of a tiny real torch upstream (``test_features``)
over three EmoDB speakers; the ``linear`` and ``mlp`` models are the registered ones.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from test_features import CPU, tiny_spec

from serbench.data import features
from serbench.data.audio import load_audio
from serbench.data.feeds import AudioFeed, CachedFeed
from serbench.data.view import load_dataset
from serbench.registry import collect
from serbench.run.inprocess import run_plan
from serbench.run.planning import make_plan
from serbench.run.training import predict, train
from serbench.specs import Budget, BuildContext, ConfigError
from serbench.store import Store

BUDGET = Budget("tiny", max_steps=12, batch_seconds=20.0, max_device_seconds=120.0,
                eval_every=4)


@pytest.fixture(scope="module")
def emodb(data_root: Path) -> Any:
    return load_dataset(collect(), "emodb", data_root, None, {})


@pytest.fixture(scope="module")
def setup(emodb: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Train on speaker 03, dev on 08, test on 09: 150 utterances in a filled cache entry."""
    by_speaker = {s: [u for u in emodb.utterances if u.speaker == s] for s in ("03", "08", "09")}
    splits = {"train": by_speaker["03"], "dev": by_speaker["08"], "test": by_speaker["09"]}
    utts = [u for s in splits.values() for u in s]
    home = tmp_path_factory.mktemp("feeds")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERBENCH_CACHE", str(home / "cache"))
        mp.setenv("SERBENCH_FILL_THREADS", "1")
        spec = tiny_spec(home / "calls", layers=3, dim=8)
        entry = features.cached_features(spec, "emodb", emodb.root, utts, CPU, quiet=True)
    labels = emodb.labels
    yield {"entry": entry, "splits": splits, "spec": spec, "labels": labels,
           "index": {lab: i for i, lab in enumerate(labels)}}


def feed(setup: dict[str, Any], pooled: bool, normalize: str = "none") -> CachedFeed:
    return CachedFeed(setup["entry"], setup["splits"], setup["index"], BUDGET.batch_seconds,
                      pooled=pooled, normalize=normalize)


def linear(setup: dict[str, Any], emodb: Any, method: str = "linear") -> Any:
    spec = collect().methods.get(method)
    torch.manual_seed(0)
    ctx = BuildContext(labels=setup["labels"], options=dict(spec.defaults), upstream=setup["spec"],
                       dataset=emodb.spec, device=CPU, seed=0, finetune_upstream=False,
                       load_upstream=lambda: None, text_encoder=lambda name: None)
    return spec.build(ctx)


@pytest.mark.parametrize("normalize", ["none", "global", "speaker"])
def test_pooled_inputs_train_linear_exactly_as_frames_do(setup: dict[str, Any], emodb: Any,
                                                         normalize: str) -> None:
    pooled, frames = feed(setup, True, normalize), feed(setup, False, normalize)
    a, b = linear(setup, emodb), linear(setup, emodb)
    pb, fb = next(pooled.train(5)), next(frames.train(5))
    assert pb.keys == fb.keys and pb.features[0].shape[1] == 1 and fb.features[0].shape[1] > 50
    la, lb = a.loss(pb), b.loss(fb)
    assert la.item() == pytest.approx(lb.item(), rel=1e-5)
    torch.testing.assert_close(a.predict(pb), b.predict(fb), rtol=1e-5, atol=1e-5)
    la.backward()
    lb.backward()
    for (name, pa), pbb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pbb.grad, rtol=1e-4, atol=1e-6, msg=name)

    # a whole budgeted run: same steps, same dev choice, same test scores
    stages = collect().methods.get("linear").stages
    a, b = linear(setup, emodb), linear(setup, emodb)
    usage_a = train(a, pooled, BUDGET, stages, 1e-2, CPU, 0, setup["labels"])
    usage_b = train(b, frames, BUDGET, stages, 1e-2, CPU, 0, setup["labels"])
    assert usage_a.steps == usage_b.steps == 12
    assert (usage_a.best_step, usage_a.best_dev_uar) == (usage_b.best_step, usage_b.best_dev_uar)
    keys_a, y_a, s_a = predict(a, pooled.evaluate("test"), CPU, BUDGET)
    keys_b, y_b, s_b = predict(b, frames.evaluate("test"), CPU, BUDGET)
    assert keys_a == keys_b and y_a == y_b and len(keys_a) == 43
    np.testing.assert_allclose(s_a, s_b, rtol=1e-4, atol=1e-4)


def _valid_frames(batches: Iterator[Any]) -> dict[str, np.ndarray]:
    """Each utterance's valid frames, ``(n, L, D)``, from frame batches."""
    out = {}
    for batch in batches:
        x = torch.stack(batch.features, dim=2)  # (B, T, L, D)
        for key, n, item in zip(batch.keys, batch.lengths.tolist(), x, strict=True):
            out[key] = item[:n].double().numpy()
    return out


def test_global_normalisation_uses_training_frames(setup: dict[str, Any]) -> None:
    raw = _valid_frames(feed(setup, False).evaluate("train"))
    normed = _valid_frames(feed(setup, False, "global").evaluate("train"))
    stacked = np.concatenate(list(normed.values()))
    np.testing.assert_allclose(stacked.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(stacked.std(0), 1.0, atol=1e-3)
    # the statistics are the training frames' (float16 values as stored), applied to test too
    every = np.concatenate(list(raw.values()))
    test_raw = _valid_frames(feed(setup, False).evaluate("test"))
    test_norm = _valid_frames(feed(setup, False, "global").evaluate("test"))
    key = next(iter(test_raw))
    np.testing.assert_allclose(test_norm[key], (test_raw[key] - every.mean(0)) / every.std(0),
                               rtol=1e-4, atol=1e-4)
    # padding stays zero
    batch = next(feed(setup, False, "global").evaluate("train"))
    short = int(batch.lengths.argmin())
    assert batch.lengths.min() < batch.lengths.max()
    assert float(batch.features[0][short, int(batch.lengths.min()):].abs().max()) == 0.0


def test_speaker_normalisation_uses_each_speakers_frames(setup: dict[str, Any]) -> None:
    normed = _valid_frames(feed(setup, False, "speaker").evaluate("test"))  # speaker 09 only
    stacked = np.concatenate(list(normed.values()))
    np.testing.assert_allclose(stacked.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(stacked.std(0), 1.0, atol=1e-3)
    # pooled inputs are the means of the normalised frames
    pooled = feed(setup, True, "speaker")
    batch = next(pooled.evaluate("test"))
    for key, x in zip(batch.keys, torch.stack(batch.features, dim=1)[:, :, 0], strict=True):
        np.testing.assert_allclose(x.numpy(), normed[key].mean(0), rtol=1e-4, atol=1e-5)


def test_all_feeds_cut_the_same_batches(setup: dict[str, Any], emodb: Any) -> None:
    waves = {u.key: load_audio(emodb.root / u.path, 16000)
             for s in setup["splits"].values() for u in s}
    feeds = [feed(setup, True), feed(setup, False),
             AudioFeed(waves, setup["splits"], setup["index"], BUDGET.batch_seconds)]
    assert len({f.batches_per_epoch for f in feeds}) == 1
    firsts = [[b.keys for b, _ in zip(f.train(3), range(12), strict=False)] for f in feeds]
    assert firsts[0] == firsts[1] == firsts[2]
    train = setup["splits"]["train"]
    epoch = firsts[0][: feeds[0].batches_per_epoch]
    assert sorted(k for b in epoch for k in b) == sorted(u.key for u in train)
    tests = list(feeds[2].evaluate("test"))
    test_keys = sorted(u.key for u in setup["splits"]["test"])
    assert sorted(k for b in tests for k in b.keys) == test_keys
    by_key = {u.key: u for u in emodb.utterances}
    for b in tests:
        assert b.audio_seconds == pytest.approx(sum(by_key[k].duration for k in b.keys))
        assert b.labels.tolist() == [setup["index"][by_key[k].label] for k in b.keys]
        assert b.genders.tolist() == [0] * b.size  # speaker 09 is female
        assert b.lengths.tolist() == [len(waves[k]) for k in b.keys]


def test_unknown_normalisation_is_one_clear_error(setup: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        feed(setup, True, "zscore")
    assert str(err.value) == "option normalize must be one of none, global, speaker, got 'zscore'"


def test_runner_fills_once_for_every_method_fold_and_seed(emodb: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """linear (pooled) and mlp (frames) on fbank, 2 folds x 2 seeds: one fill, reused 8 times."""
    rows = [u for u in emodb.utterances if u.speaker in ("03", "08", "09", "10")][::3]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["key", "path", "label", "speaker", "gender"])
        for u in rows:
            out.writerow([u.key, str(emodb.root / u.path), u.label, u.speaker, u.gender])
    fills: list[str] = []
    real, extend = features.fill, features.extend
    monkeypatch.setattr(features, "fill", lambda *a: fills.append(a[0].name) or real(*a))
    monkeypatch.setattr(features, "extend", lambda *a: fills.append("extend") or extend(*a))
    keyed, key = [], features.entry_key  # keying stats every audio file: once per sweep
    monkeypatch.setattr(features, "entry_key", lambda *a: keyed.append(1) or key(*a))
    components = collect()
    store = Store(tmp_path / "results")
    plan = make_plan(components, methods=["linear", "mlp"], upstreams=["fbank"],
                     dataset="manifest", data_root=manifest, budget="smoke", seeds=2,
                     folds=["0", "1"], store=store)
    outcomes = run_plan(plan, store, device="cpu", quiet=True)
    assert [o["status"] for o in outcomes] == ["ok"] * 8
    assert fills == ["fbank"]  # one pass stores what linear and mlp read: no second one
    assert len(keyed) == 1  # for 8 runs
    [entry] = features.list_entries()
    assert entry["upstream"] == "fbank" and entry["utterances"] == len(rows)
    record = store.read_record(outcomes[0]["run_id"])
    assert record["usage"]["steps"] == 40


@pytest.mark.parametrize("normalize", ["none", "global", "speaker"])
def test_pooled_batches_read_per_batch_beyond_the_memory_limit_are_the_same(
        setup: dict[str, Any], normalize: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corpus whose pooled inputs exceed PRENORMALISED_BYTES is read and normalised batch by
    batch (memory stays at a batch): the batches are bit for bit those of the copy made once."""
    from serbench.data import feeds

    for layers in (None, (2,)):
        kept = CachedFeed(setup["entry"], setup["splits"], setup["index"], BUDGET.batch_seconds,
                          pooled=True, normalize=normalize, layers=layers)
        monkeypatch.setattr(feeds, "PRENORMALISED_BYTES", 0)
        lean = CachedFeed(setup["entry"], setup["splits"], setup["index"], BUDGET.batch_seconds,
                          pooled=True, normalize=normalize, layers=layers)
        monkeypatch.undo()
        copied = normalize != "none" or layers is not None  # else both read the memory map
        assert (kept._source is None, lean._source is None) == (False, copied)
        for split in ("train", "test"):
            for a, b in zip(kept.evaluate(split), lean.evaluate(split), strict=True):
                assert a.layers == b.layers == layers and a.keys == b.keys
                assert torch.equal(a.stacked, b.stacked)
