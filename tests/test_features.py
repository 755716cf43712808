"""The feature cache: computed once, keyed by content, safe under concurrency, checked, streamed.

The upstream here is a real (tiny) torch module that appends a line to a counter file on every
load and forward call, so the tests can count what the cache made the upstream do, across
processes too.
"""

from __future__ import annotations

import functools
import json
import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from serbench.cli import main
from serbench.data import digests, features
from serbench.data.features import cached_features, entry_dir, entry_key
from serbench.specs import ConfigError, UpstreamSpec, Utterance

HOP = 320  # samples per frame at 16 kHz: 50 frames per second, like the SSL encoders


class TinyEncoder(nn.Module):
    """Frames of 320 samples -> a linear projection -> ``layers - 1`` elementwise tanh layers.

    Each frame depends only on its own samples, so results do not depend on batching.
    """

    def __init__(self, layers: int, dim: int, counter: Path, delay: float) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.proj = nn.Parameter(torch.randn(HOP, dim, generator=gen) / 4)
        self.blocks = nn.ParameterList(
            [nn.Parameter(1 + torch.randn(dim, generator=gen)) for _ in range(layers - 1)])
        self.counter, self.delay = counter, delay
        self.revision = "tiny-r1"

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        with open(self.counter, "a") as f:
            f.write(f"forward {os.getpid()} {waves.shape[0]}\n")
        time.sleep(self.delay)
        frames = max(waves.shape[1] // HOP, 1)
        x = nn.functional.pad(waves, (0, frames * HOP - waves.shape[1]))
        h = x.reshape(waves.shape[0], frames, HOP) @ self.proj
        hidden = [h]
        for w in self.blocks:
            h = torch.tanh(h * w)
            hidden.append(h)
        return hidden, (lengths // HOP).clamp(min=1)


def load_tiny(counter: str, layers: int, dim: int, delay: float, device: object) -> TinyEncoder:
    with open(counter, "a") as f:
        f.write(f"load {os.getpid()}\n")
    return TinyEncoder(layers, dim, Path(counter), delay).eval()


def tiny_spec(counter: Path, layers: int = 3, dim: int = 8, delay: float = 0.0,
              revision: str = "r1") -> UpstreamSpec:
    return UpstreamSpec(name="tiny", loader=functools.partial(load_tiny, str(counter), layers,
                                                              dim, delay),
                        num_layers=layers, hidden_size=dim, frame_rate=50.0, revision=revision)


def calls(counter: Path, kind: str) -> int:
    if not counter.exists():
        return 0
    return sum(line.startswith(kind) for line in counter.read_text().splitlines())


def emodb_subset(emodb_root: Path, n: int) -> list[Utterance]:
    """The first ``n`` EmoDB files (sorted by name) as utterances with their real durations."""
    from serbench.data.audio import audio_duration

    paths = sorted((emodb_root / "wav").glob("*.wav"))[:n]
    return [Utterance(key=p.stem, path=f"wav/{p.name}", label=p.stem[5], speaker=p.stem[:2],
                      duration=audio_duration(p)) for p in paths]


def copy_corpus(emodb_root: Path, dest: Path, n: int) -> list[Utterance]:
    utts = emodb_subset(emodb_root, n)
    (dest / "wav").mkdir(parents=True)
    for u in utts:
        shutil.copy2(emodb_root / u.path, dest / u.path)
    return utts


CPU = torch.device("cpu")


def fill(spec: UpstreamSpec, root: Path, utts: list[Utterance], **kw: object
         ) -> features.FeatureEntry:
    return cached_features(spec, "emodb", root, utts, CPU, quiet=True, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- contents


def test_entry_holds_every_layer_as_stored_and_is_computed_once(emodb_root: Path,
                                                                tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    spec = tiny_spec(counter)
    utts = emodb_subset(emodb_root, 12)
    entry = fill(spec, emodb_root, utts)
    assert calls(counter, "load") == 1
    forwards = calls(counter, "forward")
    assert forwards == len(features.inference_batches([u.duration for u in utts]))
    assert entry.keys == [utts[i].key for b in features.inference_batches(
        [u.duration for u in utts]) for i in b]
    assert entry.revision == "tiny-r1" and entry.skipped == []

    # frames are what the module gives for the utterance alone, in float16
    from serbench.data.audio import load_audio

    u = utts[3]
    wave = torch.from_numpy(load_audio(emodb_root / u.path, 16000))[None]
    with torch.no_grad():
        hidden, n = TinyEncoder(3, 8, tmp_path / "o", 0.0)(wave, torch.tensor([wave.shape[1]]))
    x = entry.frames(u.key)
    assert x.dtype == np.float16 and x.shape == (int(n[0]), 3, 8) == (len(wave[0]) // HOP, 3, 8)
    want = torch.stack([h[0] for h in hidden], dim=1).half().numpy()
    assert np.array_equal(x, want)
    # pooled inputs and second moments are those of the stored frames
    row = entry.rows[u.key]
    np.testing.assert_allclose(entry.pooled[row], x.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(entry.sqmean[row], (x.astype(np.float64) ** 2).mean(0),
                               rtol=1e-5, atol=1e-7)
    keys = [v.key for v in utts[:5]]
    every = np.concatenate([entry.frames(k).astype(np.float64) for k in keys])
    mean, std = entry.moments(keys)
    np.testing.assert_allclose(mean, every.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, every.std(0), rtol=1e-4)

    # a second call (utterances in another order, frames wanted or not) runs nothing
    again = fill(spec, emodb_root, list(reversed(utts)))
    fill(spec, emodb_root, utts, need_frames=False)
    assert calls(counter, "load") == 1 and calls(counter, "forward") == forwards
    assert again.path == entry.path


def test_key_changes_with_upstream_revision_dataset_and_audio_content(emodb_root: Path,
                                                                      tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    root = tmp_path / "corpus"
    utts = copy_corpus(emodb_root, root, 6)
    spec = tiny_spec(counter)
    base = entry_key(spec, "emodb", root, utts)
    assert entry_key(tiny_spec(counter, revision="r2"), "emodb", root, utts) != base
    assert entry_key(spec, "emodb2", root, utts) != base
    assert entry_key(spec, "emodb", root, utts[:5]) != base
    # the same bytes elsewhere (a copy of the corpus, new mtimes) are the same entry
    moved = tmp_path / "moved"
    shutil.copytree(root, moved, copy_function=shutil.copy)
    assert entry_key(spec, "emodb", moved, utts) == base

    # a same-size rewrite with its modification time put back is still caught
    target = root / utts[2].path
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-100:] = bytes(100)
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    assert entry_key(spec, "emodb", root, utts) != base

    fill(spec, root, utts)
    fill(spec, root, utts)
    fill(tiny_spec(counter, revision="r2"), root, utts)
    assert calls(counter, "load") == 2
    assert [r["status"] for r in features.list_entries()] == ["ok", "ok"]


def test_digests_are_memoised_and_racy_files_are_not(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"a" * 1000)
    b.write_bytes(b"b" * 1000)
    hashed: list[str] = []
    real = digests.file_digest
    monkeypatch.setattr(digests, "file_digest", lambda p: hashed.append(p.name) or real(p))
    # files changed in the last RACY_NS are hashed every time (a rewrite could share the tick)
    monkeypatch.setattr(digests, "RACY_NS", 10**18)
    first = digests.file_digests([a, b, tmp_path / "missing"])
    assert first[2] is None and first[0] != first[1]
    assert digests.file_digests([a, b]) == first[:2] and hashed == ["a.bin", "b.bin"] * 2
    monkeypatch.setattr(digests, "RACY_NS", 0)
    hashed.clear()
    digests.file_digests([a, b])
    assert digests.file_digests([a, b]) == first[:2] and hashed == ["a.bin", "b.bin"]
    b.write_bytes(b"c" * 1000)  # same size; its ctime moves
    hashed.clear()
    assert features.file_digests([a, b])[1] != first[1] and hashed == ["b.bin"]


def test_bad_audio_stops_the_fill_or_is_skipped_and_recorded(emodb_root: Path,
                                                             tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    utts = copy_corpus(emodb_root, root, 4)
    (root / utts[1].path).write_bytes(b"")
    spec = tiny_spec(tmp_path / "calls")
    with pytest.raises(ConfigError, match=f"{utts[1].path}: empty file"):
        fill(spec, root, utts)
    tiny = features.cache_root() / "features" / "tiny"
    assert not list(tiny.glob(".tmp-*")) and features.list_entries() == []
    entry = fill(spec, root, utts, skip_bad_audio=True)
    assert sorted(entry.rows) == sorted(u.key for u in utts if u is not utts[1])
    assert entry.skipped == [{"key": utts[1].key, "path": utts[1].path,
                              "reason": "empty file (0 bytes)"}]


# --------------------------------------------------------------------------------- damage


def flip(path: Path, where: int) -> None:
    with open(path, "r+b") as f:
        f.seek(where)
        byte = f.read(1)
        f.seek(where)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("name", ["frames-002.f16", "mean.f32", "var.f32", "index.i64",
                                  "meta.json"])
def test_a_damaged_file_is_detected_and_the_entry_recomputed(
        name: str, emodb_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counter = tmp_path / "calls"
    spec = tiny_spec(counter)
    utts = emodb_subset(emodb_root, 5)
    entry = fill(spec, emodb_root, utts)
    good = {k: entry.frames(k).copy() for k in entry.rows}
    pooled = np.array(entry.pooled)
    path = entry.path / name
    flip(path, path.stat().st_size // 2)
    again = fill(spec, emodb_root, utts)
    assert calls(counter, "load") == 2  # recomputed, not used
    assert "recomputing the entry" in capsys.readouterr().err
    assert all(np.array_equal(again.frames(k), v) for k, v in good.items())
    assert np.array_equal(np.array(again.pooled), pooled)


def test_pooled_methods_check_the_small_files_and_frames_are_checked_when_used(
        emodb_root: Path, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    spec = tiny_spec(counter)
    utts = emodb_subset(emodb_root, 5)
    entry = fill(spec, emodb_root, utts)
    features._OPEN.clear()
    features._VERIFIED.clear()  # a new process
    flip(entry.path / "frames-002.f16", 10)
    pooled_only = fill(spec, emodb_root, utts, need_frames=False)
    assert calls(counter, "load") == 1
    with pytest.raises(features.CacheCorrupt, match="frames-002.f16 does not match its checksum"):
        pooled_only.frames(utts[0].key)
    fill(spec, emodb_root, utts)  # a frame-level method: recomputed
    assert calls(counter, "load") == 2


# --------------------------------------------------------------------------------- processes


def _fill_in_child(spec: UpstreamSpec, root: str, utts: list[Utterance], cache: str,
                   start: object, out: object) -> None:
    os.environ["SERBENCH_CACHE"] = cache
    start.wait()  # type: ignore[attr-defined]
    entry = cached_features(spec, "emodb", Path(root), utts, CPU, quiet=True)
    frames = np.stack([entry.layer_file(k) for k in range(entry.num_layers)])
    out.put((str(entry.path), frames.tobytes(), np.asarray(entry.pooled).tobytes()))  # type: ignore[attr-defined]


def test_two_processes_filling_at_once_fill_once_and_read_the_same(emodb_root: Path,
                                                                   tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    spec = tiny_spec(counter, delay=0.3)
    utts = emodb_subset(emodb_root, 10)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_fill_in_child,
                         args=(spec, str(emodb_root), utts, os.environ["SERBENCH_CACHE"], start,
                               out)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert calls(counter, "load") == 1
    assert got[0] == got[1]
    assert len(list((features.cache_root() / "features" / "tiny").iterdir())) == 2  # entry, lock


def _killed_fill(spec: UpstreamSpec, root: str, utts: list[Utterance], cache: str) -> None:
    os.environ["SERBENCH_CACHE"] = cache
    cached_features(spec, "emodb", Path(root), utts, CPU, quiet=True)


def test_a_fill_killed_half_way_is_never_read_and_is_cleaned_up(emodb_root: Path,
                                                                tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    utts = emodb_subset(emodb_root, 40)
    slow = tiny_spec(counter, delay=0.5)
    ctx = mp.get_context("spawn")
    child = ctx.Process(target=_killed_fill,
                        args=(slow, str(emodb_root), utts, os.environ["SERBENCH_CACHE"]))
    child.start()
    final = entry_dir(slow, "emodb", entry_key(slow, "emodb", emodb_root, utts))
    deadline = time.time() + 60
    while calls(counter, "forward") < 1 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    leftovers = list(final.parent.glob(".tmp-*"))
    assert len(leftovers) == 1 and (leftovers[0] / "mean.f32").exists()
    assert not final.exists()
    assert [r["status"] for r in features.list_entries()] == ["incomplete"]

    entry = fill(tiny_spec(counter), emodb_root, utts)
    assert entry.path == final and len(entry.rows) == 40
    assert not list(final.parent.glob(".tmp-*"))
    assert calls(counter, "load") == 2


def _anon_rss() -> int:
    """Resident anonymous memory (the heap): mapped cache files are page cache, not RAM we hold."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def _rss_of_fill(spec: UpstreamSpec, root: str, utts: list[Utterance], cache: str,
                 out: object) -> None:
    import threading

    import soxr  # noqa: F401  (libraries the fill loads belong to the baseline)

    os.environ["SERBENCH_CACHE"] = cache
    from serbench.data import fill

    fill.INFER_SECONDS = 5.0  # memory is one inference batch: make it small against the entry
    spec.loader(CPU)
    before = _anon_rss()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _anon_rss())
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    entry = cached_features(spec, "synthetic", Path(root), utts, CPU, quiet=True)
    done.set()
    sampler.join()
    size = sum(p.stat().st_size for p in entry.path.iterdir())
    out.put((before, peak[0], size))  # type: ignore[attr-defined]


def test_memory_stays_bounded_while_filling_a_large_entry(tmp_path: Path) -> None:
    """80 files of 3-5 s, 12 layers x 512 dims: a 200 MB entry, filled in a fraction of that."""
    rng = np.random.default_rng(0)
    root = tmp_path / "synthetic"
    (root / "wav").mkdir(parents=True)
    utts = []
    for i in range(80):
        seconds = 3.0 + (i % 5) * 0.5
        sf.write(root / "wav" / f"u{i:03d}.wav",
                 (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32), 16000)
        utts.append(Utterance(f"u{i:03d}", f"wav/u{i:03d}.wav", "neutral", f"s{i % 4}",
                              duration=seconds))
    spec = tiny_spec(tmp_path / "calls", layers=12, dim=512)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_rss_of_fill,
                        args=(spec, str(root), utts, os.environ["SERBENCH_CACHE"], out))
    child.start()
    before, peak, size = out.get(timeout=300)
    child.join()
    frames = sum(int(u.duration * 16000) // HOP for u in utts)
    assert size > frames * 12 * 512 * 2 > 190e6  # the frames: 16,000 x 12 x 512 float16
    assert peak - before < size / 3, (before, peak, size)


# --------------------------------------------------------------------------------- cli


def test_cache_ls_and_clear(emodb_root: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    counter = tmp_path / "calls"
    utts = emodb_subset(emodb_root, 3)
    entry = fill(tiny_spec(counter), emodb_root, utts)
    fill(tiny_spec(counter), emodb_root, utts[:2])
    assert main(["cache", "ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["utterances"] for r in rows) == [2, 3]
    row = next(r for r in rows if r["utterances"] == 3)
    assert row["upstream"] == "tiny" and row["dataset"] == "emodb" and row["status"] == "ok"
    assert (row["layers"], row["dim"], row["revision"]) == (3, 8, "tiny-r1")
    assert row["bytes"] == sum(p.stat().st_size for p in entry.path.iterdir())
    assert main(["cache", "ls"]) == 0
    assert "2 entries" in capsys.readouterr().out

    assert main(["cache", "clear", "--upstream", "fbank"]) == 0
    assert capsys.readouterr().out.startswith("removed 0 entries")
    assert main(["cache", "clear", "--dataset", "emodb"]) == 0
    assert capsys.readouterr().out.startswith("removed 2 entries")
    assert features.list_entries() == []
    assert main(["cache", "ls"]) == 0
    assert "the feature cache is empty" in capsys.readouterr().out
    fill(tiny_spec(counter), emodb_root, utts)  # recomputed after clearing
    assert calls(counter, "load") == 3


# --------------------------------------------------------------------------------- faults


def test_a_file_truncated_while_in_use_is_named_not_a_bus_error(emodb_root: Path,
                                                                 tmp_path: Path) -> None:
    """A child maps an entry, the frames file is cut in half, the child reads the last frames:
    reading the mapped pages past the end would kill it with SIGBUS and no message."""
    import subprocess
    import sys

    entry = fill(tiny_spec(tmp_path / "calls"), emodb_root, emodb_subset(emodb_root, 6))
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from serbench.data.features import FeatureEntry, read_meta\n"
        "path = Path(sys.argv[1])\n"
        "entry = FeatureEntry(path, read_meta(path))\n"
        "last = max(entry.keys, key=lambda k: int(entry.index[entry.rows[k], 0]))\n"
        "entry.layer_file(2)\n"
        "os.truncate(path / 'frames-002.f16', (path / 'frames-002.f16').stat().st_size // 2)\n"
        "try:\n"
        "    print(float(entry.layer_frames(last).astype('float32').sum()))\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(entry.path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr)
    frames = (entry.path / "frames-002.f16").stat().st_size
    assert done.stdout == (f"feature cache entry {entry.path} was damaged while in use "
                           f"(frames-002.f16: {frames} of {2 * frames} bytes); run `serbench cache "
                           "clear --upstream tiny` and run again\n")


def test_a_full_disk_during_the_fill_names_the_cache_and_leaves_no_temporary_entry(
        emodb_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERBENCH_FAULT", "cache-disk-full:4096")  # each file: 4 KiB, then full
    with pytest.raises(ConfigError) as err:
        fill(tiny_spec(tmp_path / "calls"), emodb_root, emodb_subset(emodb_root, 6))
    where = features.cache_root() / "features" / "tiny"
    assert str(err.value) == (f"cannot write the feature cache in {where}: No space left on "
                              "device; free some space there or point SERBENCH_CACHE at a disk "
                              "with room")
    assert sorted(p.name for p in where.iterdir()) == [
        next(p.name for p in where.iterdir() if p.name.endswith(".lock"))]  # the lock only
    monkeypatch.delenv("SERBENCH_FAULT")
    assert fill(tiny_spec(tmp_path / "calls"), emodb_root, emodb_subset(emodb_root, 6)).keys


def test_cache_ls_calls_a_half_deleted_entry_damaged(emodb_root: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    entry = fill(tiny_spec(tmp_path / "calls"), emodb_root, emodb_subset(emodb_root, 3))
    (entry.path / "frames-000.f16").unlink()  # `rm -r` stopped half-way
    assert main(["cache", "ls", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "damaged" and row["path"] == str(entry.path)


def test_a_damaged_digest_memo_is_remade(emodb_root: Path, tmp_path: Path) -> None:
    """Planning fingerprints every run's audio through the memo: a damaged one must not stop it."""
    utts = emodb_subset(emodb_root, 3)
    paths = [emodb_root / u.path for u in utts]
    first = features.file_digests(paths)
    memo = features.cache_root() / "file-digests.sqlite"
    memo.write_bytes(b"not a database" * 300)
    assert features.file_digests(paths) == first  # hashed again, the damaged memo removed
    assert not memo.exists()
    assert features.file_digests(paths) == first and memo.exists()
