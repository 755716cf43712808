"""Where a corpus lives, its parsed manifest (cached on disk) and its checked folds.

Parsing a corpus happens once: the utterances are cached under ``$SERBENCH_CACHE/manifests``
(default ``~/.cache/serbench``), keyed by dataset, root and options, and stamped with a
fingerprint of the corpus (every file's path, size and modification time, plus the audio files
the manifest names), so any change to the corpus parses it again.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from serbench.data.audio import AudioError, audio_duration
from serbench.data.folds import check_folds
from serbench.options import coerce
from serbench.specs import ConfigError, DatasetSpec, Fold, Utterance

CACHE_VERSION = 2  # 2: durations checked against the audio headers


# ------------------------------------------------------------------------------------ roots


def resolve_root(spec: DatasetSpec, data_root: str | Path | None, pm: Any = None) -> Path:
    """The corpus folder (a file for ``manifest``): --data-root, the hook, then $SERBENCH_DATA.

    ``data_root`` may be the corpus itself or a folder holding it under one of ``spec.dirnames``.
    """
    source = "--data-root"
    if data_root is None:
        manager = getattr(pm, "pm", pm)  # a serbench Plugins or a bare pluggy manager
        hooked = manager.hook.serbench_dataset_root(dataset=spec.name) if manager else None
        if hooked is not None:
            data_root, source = hooked, "the serbench_dataset_root hook"
        elif os.environ.get("SERBENCH_DATA"):
            data_root, source = os.environ["SERBENCH_DATA"], "$SERBENCH_DATA"
        else:
            raise ConfigError(
                f"no data root for dataset {spec.name!r}: pass --data-root DIR or set "
                f"SERBENCH_DATA; {_how_to_get(spec, '<DIR>')}"
            )
    root = Path(data_root).expanduser()
    for name in spec.dirnames:
        if (root / name).exists():
            return (root / name).resolve()
    if root.exists():
        return root.resolve()
    raise ConfigError(
        f"dataset {spec.name!r} not found at {root} (from {source}); {_how_to_get(spec, root)}"
    )


def _how_to_get(spec: DatasetSpec, root: Any) -> str:
    where = f"{root}/{spec.dirnames[0]}" if spec.dirnames else str(root)
    if spec.download is not None:
        return (
            f"run `serbench data download {spec.name} --data-root {root}` or put the files in "
            f"{where} by hand" + (f" ({spec.obtain})" if spec.obtain else "")
        )
    return spec.obtain or f"put the corpus in {where}"


# ------------------------------------------------------------------------------------ options


def dataset_options(spec: DatasetSpec, raw: Mapping[str, str] | Iterable[str]) -> dict[str, Any]:
    """Every option of ``spec`` (defaults filled in), with ``raw`` values coerced to their type.

    ``raw`` is a mapping or ``KEY=VALUE`` strings; an unknown key answers "did you mean".
    """
    pairs = raw.items() if isinstance(raw, Mapping) else (_split(s, spec) for s in raw)
    out = dict(spec.options)
    for key, value in pairs:
        if key not in spec.options:
            close = difflib.get_close_matches(key, list(spec.options), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"known: {', '.join(sorted(spec.options)) or 'none'}")
            raise ConfigError(f"dataset {spec.name!r} has no option {key!r}; {hint}")
        out[key] = coerce(f"dataset {spec.name!r}", key, value, spec.options[key])
    return out


def _split(item: str, spec: DatasetSpec) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"dataset option {item!r} for {spec.name!r} is not KEY=VALUE")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


# ------------------------------------------------------------------------------------ manifest


def cache_dir() -> Path:
    return Path(os.environ.get("SERBENCH_CACHE") or Path.home() / ".cache" / "serbench")


def load_utterances(
    spec: DatasetSpec,
    root: Path,
    options: Mapping[str, Any],
    *,
    on_bad_audio: Callable[[AudioError], None] | None = None,
) -> list[Utterance]:
    """The corpus's utterances with durations, parsed once and cached until the corpus changes.

    A file whose header cannot be read raises its :class:`AudioError`; with ``on_bad_audio``
    (the runner's ``--skip-bad-audio``) the utterance is dropped and the error handed over.
    """
    root = Path(root)
    opts = {**spec.options, **options}
    key = json.dumps({"dataset": spec.name, "root": str(root.resolve()), "options": opts},
                     sort_keys=True, default=str)
    path = cache_dir() / "manifests" / f"{spec.name}-{_digest(key)[:16]}.json"
    # fingerprint before reading a cache, but parse first otherwise: a wrong --data-root then
    # fails at once instead of after walking whatever tree it names
    cached = _read_cache(path, _tree_fingerprint(root), root) if path.is_file() else None
    if cached is None:
        utterances, bad = _parse(spec, root, opts)
        _write_cache(path, _tree_fingerprint(root), utterances, bad, root)
    else:
        utterances, bad = cached
    if bad:
        errors = [AudioError(p, problem) for p, problem in bad.items()]
        if on_bad_audio is None:
            raise errors[0]
        for err in errors:
            on_bad_audio(err)
        utterances = [u for u in utterances if str(audio_path(root, u)) not in bad]
    return utterances


def _parse(
    spec: DatasetSpec, root: Path, opts: Mapping[str, Any]
) -> tuple[list[Utterance], dict[str, str]]:
    utterances = spec.load_manifest(root, opts)
    out, bad = [], {}
    for u in utterances:
        try:
            measured = round(audio_duration(audio_path(root, u)), 6)
        except AudioError as exc:
            bad[exc.path] = exc.problem
        else:
            if not _agrees(u.duration, measured):  # budgets meter audio seconds: trust the audio
                u = replace(u, duration=measured)
        out.append(u)
    return out, bad


def _agrees(given: float | None, measured: float) -> bool:
    """Whether a corpus's stated duration matches the audio header (to 10 ms or 1 %)."""
    if given is None or not math.isfinite(given):
        return False
    return abs(given - measured) <= max(0.01, 0.01 * measured)


def audio_path(root: Path, u: Utterance) -> Path:
    """Where an utterance's audio is: relative to the corpus folder (or the manifest's folder).

    An absolute path (a manifest's) is taken as is, without asking the disk about ``root``: every
    run keys its cache entry through this, once per utterance.
    """
    if os.path.isabs(u.path):
        return Path(u.path)
    base = root if root.is_dir() else root.parent
    return base / u.path


def _tree_fingerprint(root: Path) -> str:
    """Hash of every file's relative path, size and mtime under ``root`` (or of ``root`` itself)."""
    h = hashlib.sha256()
    if root.is_file():
        st = root.stat()
        h.update(f"{root.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            h.update(f"{rel}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _audio_fingerprint(root: Path, utterances: Iterable[Utterance]) -> str:
    """Audio named by the manifest may live outside ``root`` (absolute manifest paths).

    Paths are joined as strings, the folder asked about once: every command that loads a corpus
    pays this, one ``stat`` per file and nothing more.
    """
    base = str(root if root.is_dir() else root.parent)
    h = hashlib.sha256()
    for u in utterances:
        p = os.path.join(base, u.path)
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _read_cache(
    path: Path, tree: str, root: Path
) -> tuple[list[Utterance], dict[str, str]] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != CACHE_VERSION or data.get("tree") != tree:
        return None
    utterances = [Utterance(**u) for u in data["utterances"]]
    audio = _audio_fingerprint(root, utterances)
    if audio != data.get("audio"):
        return None
    return utterances, dict(data.get("bad", {}))


def _write_cache(
    path: Path, tree: str, utterances: list[Utterance], bad: dict[str, str], root: Path
) -> None:
    data = {
        "version": CACHE_VERSION,
        "tree": tree,
        "audio": _audio_fingerprint(root, utterances),
        "bad": bad,
        "utterances": [dict(vars(u)) for u in utterances],  # flat fields: asdict deep-copies
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs a re-parse next time


# ------------------------------------------------------------------------------------ fingerprint


def fold_fingerprints(root: Path, utterances: Iterable[Utterance], folds: Iterable[Fold]
                      ) -> dict[str, str]:
    """Per fold, a hash of everything a run of it sees of the data: which keys are in train, dev
    and test, and each one's label, speaker, gender, transcript and audio content.

    It goes into the run id (relabelled or re-recorded data is a new run, never "already
    stored") and into the pairing check of ``compare`` and ``leaderboard``. Audio content
    digests are those of the feature cache, memoised per file version, so this costs one read
    of each audio file the first time and a ``stat`` afterwards.
    """
    from serbench.data.digests import file_digests

    utts = {u.key: u for u in utterances}
    digests = dict(zip(utts, file_digests([audio_path(root, u) for u in utts.values()]),
                       strict=True))
    rows = {k: f"{k}\0{u.label}\0{u.speaker}\0{u.gender}\0{u.text}\0{digests[k] or 'missing'}"
            for k, u in utts.items()}
    out = {}
    for fold in folds:
        h = hashlib.sha256()
        for split in ("train", "dev", "test"):
            h.update(f"[{split}]\n".encode())
            for key in sorted(k for k in getattr(fold, split) if k in utts):
                h.update(rows[key].encode() + b"\n")
        out[fold.name] = h.hexdigest()[:16]
    return out


# ------------------------------------------------------------------------------------ folds


def load_folds(
    spec: DatasetSpec,
    utterances: list[Utterance],
    protocol: str | None,
    options: Mapping[str, Any],
) -> list[Fold]:
    """The protocol's folds (the default one when ``protocol`` is None), checked."""
    protocol = protocol or spec.default_protocol
    if protocol not in spec.protocols:
        close = difflib.get_close_matches(protocol, list(spec.protocols), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(spec.protocols)}"
        raise ConfigError(f"dataset {spec.name!r} has no protocol {protocol!r}; {hint}")
    folds = spec.folds(utterances, protocol, {**spec.options, **options})
    check_folds(spec.name, utterances, folds, spec.labels)
    return folds
