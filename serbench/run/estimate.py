"""What a sweep costs before it starts: feature-cache size and GPU-hours, from the budgets.

One estimator for every caller (the GPU recipe's plan, the cache's pre-flight check):

- **cache size** of one (upstream, corpus) entry: the pooled statistics ``utterances × layers ×
  width × 8`` bytes (a float32 mean and variance; every entry has them) and the frame index
  (16 bytes an utterance), plus frames ``seconds × frame_rate × width × 2`` bytes (float16) for
  each layer a frame-reading method of the sweep reads (none when every method reads pooled
  inputs); an utterance-level extractor stores the pooled statistics only;
- **compute**: a frozen upstream costs one forward pass over each corpus once (the cache), then
  each run's training steps on cached features (a small head: ``HEAD_STEP_SECONDS`` per step); a
  fine-tuned one costs, per run, ``steps × batch_seconds`` of audio forward and backward (3 × a
  forward). A forward pass runs at ``throughput`` seconds of audio per device-second, measured on
  WavLM Large (``serbench-reproduce check``) and scaled by transformer size to other upstreams;
  weight-free extractors (fbank, openSMILE) use no GPU. Each run is capped by its budget's
  ``max_device_seconds``, so ``cap_hours`` is the most the sweep can take.

Corpus durations come from the loaded manifest when the corpus is present, else from
``KNOWN`` (published totals, approximate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

BYTES = 2  # float16 frames
POOLED_BYTES = 8  # float32 mean and variance, per layer and dimension
INDEX_BYTES = 16  # frame offset and count, per utterance
HEAD_STEP_SECONDS = 0.02  # one step of a probe on cached features, data loading included
BACKWARD = 3.0  # forward + backward of a fine-tuned encoder, in forward passes
LARGE_THROUGHPUT = 1000.0  # s of audio per GPU-second, WavLM Large forward in bf16 (assumed)
# (seconds of audio, utterances, folds of the default protocol): published totals, approximate
KNOWN: dict[str, tuple[float, int, int]] = {
    "iemocap": (7.0 * 3600, 5531, 5),  # the 4-class set, ~4.6 s per utterance
    "msp_podcast": (237.0 * 3600, 151654, 1),
    "crema_d": (5.3 * 3600, 7442, 5),
    "ravdess": (1.48 * 3600, 1440, 6),
    "emodb": (24.8 * 60, 535, 10),
}


@dataclass(frozen=True)
class Corpus:
    """What the estimate needs of a corpus: audio seconds, utterances, folds."""

    name: str
    seconds: float
    utterances: int
    folds: int

    @classmethod
    def of_view(cls, view: Any) -> Corpus:
        """From a loaded dataset view (its manifest durations; unknown ones at the mean)."""
        known = [u.duration for u in view.utterances if u.duration]
        mean = sum(known) / len(known) if known else 0.0
        seconds = sum(u.duration or mean for u in view.utterances)
        return cls(view.spec.name, seconds, len(view.utterances), len(view.folds))

    @classmethod
    def known(cls, name: str) -> Corpus:
        seconds, n, folds = KNOWN[name]
        return cls(name, seconds, n, folds)


def cache_bytes(upstream: Any, corpus: Corpus, frame_layers: Iterable[int] | None = None) -> int:
    """Bytes of one cache entry: the pooled statistics of every layer and the frames of
    ``frame_layers`` (None: every layer; empty: pooled statistics only)."""
    pooled = corpus.utterances * (upstream.num_layers * upstream.hidden_size * POOLED_BYTES
                                  + INDEX_BYTES)
    return int(pooled + frames_bytes(upstream, corpus, frame_layers))


def frames_bytes(upstream: Any, corpus: Corpus, frame_layers: Iterable[int] | None) -> int:
    """Bytes of the frames of ``frame_layers`` (None: every layer) over a corpus."""
    count = upstream.num_layers if frame_layers is None else len(set(frame_layers))
    if not upstream.frame_rate:
        return 0
    return int(corpus.seconds * upstream.frame_rate * count * upstream.hidden_size * BYTES)


def _size(upstream: Any) -> float:
    """Transformer weights, roughly (12 · layers · width²): what a forward pass costs."""
    return 12.0 * max(upstream.num_layers - 1, 1) * upstream.hidden_size ** 2


def throughput(upstream: Any, large: float = LARGE_THROUGHPUT) -> float | None:
    """Seconds of audio per GPU-second for this upstream's forward; None: no GPU (no weights)."""
    if not upstream.trainable:
        return None
    return large * _size_large() / _size(upstream)


def _size_large() -> float:
    return 12.0 * 24 * 1024 ** 2


@dataclass
class Cell:
    """Runs of one method × upstream on one corpus (test corpus for cross-corpus) under a
    budget."""

    method: str
    upstream: Any
    corpus: Corpus
    runs: int
    budget: Any
    finetune: bool
    test_corpus: Corpus | None = None
    frame_layers: tuple[int, ...] | None = ()  # frames read (None: every layer; (): pooled)


@dataclass
class Estimate:
    """A sweep's cost: runs, hours (expected and capped) and cache bytes per entry."""

    runs: int = 0
    feature_hours: float = 0.0
    train_hours: float = 0.0
    cap_hours: float = 0.0
    cache: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def gpu_hours(self) -> float:
        return self.feature_hours + self.train_hours

    @property
    def cache_bytes(self) -> int:
        return sum(self.cache.values())

    def lines(self, name: str) -> list[str]:
        return [f"{name}: {self.runs} runs; {self.gpu_hours:.1f} GPU-hours expected "
                f"({self.feature_hours:.1f} feature extraction, {self.train_hours:.1f} "
                f"training), at most {self.cap_hours + self.feature_hours:.1f} under the "
                f"budgets' caps; feature cache {human_bytes(self.cache_bytes)} in "
                f"{len(self.cache)} entries"]


def plan_cells(plans: Iterable[Any]) -> list[Cell]:
    """The cells of planned sweeps, counting the runs still to do (``serbench run --dry-run``)."""
    cells: dict[tuple[int, str, str], Cell] = {}
    for i, plan in enumerate(plans):
        corpus = Corpus.of_view(plan.dataset)
        for run in plan.todo():
            cond = run.condition
            key = (i, cond.method.name, cond.upstream.name)
            if key not in cells:
                cells[key] = Cell(cond.method.name, cond.upstream, corpus, 0, plan.budget,
                                  not cond.frozen, frame_layers=cond.frames_read())
            cells[key].runs += 1
    return list(cells.values())


def estimate(cells: Iterable[Cell], large_throughput: float = LARGE_THROUGHPUT) -> Estimate:
    """GPU-hours and cache bytes of a sweep's cells (one cache entry per upstream × corpus,
    holding the frames of the layers its cells read together)."""
    out = Estimate()
    extracted: set[tuple[str, str]] = set()
    layers: dict[tuple[str, str], set[int] | None] = {}
    for c in cells:
        speed = throughput(c.upstream, large_throughput)
        out.runs += c.runs
        if c.finetune:
            step = (c.budget.batch_seconds * BACKWARD / speed) if speed else HEAD_STEP_SECONDS
        else:
            step = HEAD_STEP_SECONDS
            for corpus in filter(None, (c.corpus, c.test_corpus)):
                key = (c.upstream.name, corpus.name)
                union = layers.setdefault(key, set())
                if union is not None:
                    layers[key] = None if c.frame_layers is None else union | set(c.frame_layers)
                out.cache[key] = cache_bytes(c.upstream, corpus, layers[key])
                if key not in extracted:
                    extracted.add(key)
                    out.feature_hours += (corpus.seconds / speed / 3600) if speed else 0.0
        per_run = min(c.budget.max_steps * step, c.budget.max_device_seconds)
        out.train_hours += c.runs * per_run / 3600
        out.cap_hours += c.runs * c.budget.max_device_seconds / 3600
    return out


def suite_cells(path: Any, components: Any,
                corpora: Mapping[str, Corpus] | None = None) -> list[Cell]:
    """The cells of a suite file without reading any corpus: durations from ``corpora`` (the
    ones present) else :data:`KNOWN`; folds the default protocol's (or the entry's list)."""
    from pathlib import Path

    from serbench.options import method_options
    from serbench.run.suites import _Checker, _entries, baseline_groups, read_suite

    path = Path(path)
    corpora = dict(corpora or {})

    def corpus(name: str) -> Corpus:
        return corpora.get(name) or Corpus.known(name)

    cells = []
    for e in _entries(_Checker(path), read_suite(path), components, False):
        test = e.cross.get("test_dataset")
        folds = 1 if test else len(e.folds) if e.folds else corpus(e.dataset).folds
        for m_name in e.methods:
            spec = components.methods.get(m_name)
            options, _ = method_options(spec.name, spec.defaults, e.options)
            twice = 2 if e.with_baseline and baseline_groups(components, [m_name], {}) else 1
            for u_name in e.upstreams:
                upstream = components.upstreams.get(u_name)
                cells.append(Cell(
                    m_name, upstream, corpus(e.dataset), folds * len(e.seeds) * twice, e.budget,
                    spec.finetunes(options), corpus(test) if test else None,
                    spec.frames_read(options, upstream.num_layers)))
    return cells


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} TB"


def describe(estimates: Sequence[tuple[str, Estimate]]) -> list[str]:
    """One line per suite and a total."""
    lines = [line for name, e in estimates for line in e.lines(name)]
    total = sum(e.gpu_hours for _, e in estimates)
    cache = sum(e.cache_bytes for _, e in estimates)
    lines.append(f"total: {total:.1f} GPU-hours expected, feature cache {human_bytes(cache)}")
    return lines
