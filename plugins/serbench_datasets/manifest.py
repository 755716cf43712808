"""Any corpus from a manifest: CSV or JSONL, or an EmoBox dataset folder, read as is.

``--data-root`` points at the manifest file, or at a folder holding ``manifest.csv`` /
``manifest.jsonl``, or at an EmoBox dataset folder (``fold_1/<name>_test_fold_1.jsonl``, ...).
Columns: ``path, label, speaker`` and optional ``key, gender, session, text, fold, duration``;
EmoBox records (``key, wav, emo, length``) are accepted too. Audio paths are absolute or relative
to the manifest's folder (option ``audio_root`` sets another base, e.g. the EmoBox checkout).
Labels are the canonical names (common spellings such as ``anger`` or ``hap`` are mapped).
EmoBox records carry no speaker: each such utterance counts as its own speaker.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from serbench import ConfigError, DatasetSpec, Fold, Utterance, leave_one_group_out

NAME = "manifest"
LABELS = ("angry", "bored", "calm", "contempt", "disgusted", "excited", "fearful", "frustrated",
          "happy", "neutral", "other", "sad", "surprised")
ALIASES = {
    "anger": "angry", "ang": "angry", "boredom": "bored", "boredem": "bored",
    "disgust": "disgusted", "dis": "disgusted", "excitement": "excited", "exc": "excited",
    "fear": "fearful", "fea": "fearful", "frustration": "frustrated", "fru": "frustrated",
    "happiness": "happy", "hap": "happy", "joy": "happy", "neu": "neutral", "oth": "other",
    "sadness": "sad", "surprise": "surprised", "sur": "surprised",
}
GENDERS = {"f": "female", "female": "female", "m": "male", "male": "male"}
DEFAULT_FILES = ("manifest.csv", "manifest.jsonl")
FOLD_DIR = re.compile(r"^fold_?(\d+)$")


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of a CSV (header on line 1) or JSONL file."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the manifest "
                          "as UTF-8") from None
    if path.suffix.lower() == ".csv":
        yield from enumerate(csv.DictReader(io.StringIO(text, newline="")), 2)
        return
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{lineno}: not a JSON object ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ConfigError(f"{path}:{lineno}: not a JSON object")
        yield lineno, record


def _field(record: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = record.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return ""


def _utterance(record: Mapping[str, Any], where: str, base: Path, split: str) -> Utterance:
    emobox = "wav" in record and "emo" in record
    raw_path = _field(record, "path", "wav")
    raw_label = _field(record, "label", "emo")
    if not raw_path or not raw_label:
        raise ConfigError(f"{where}: needs a path and a label")
    label = ALIASES.get(raw_label.lower(), raw_label.lower())
    if label not in LABELS:
        raise ConfigError(f"{where}: unknown label {raw_label!r}; use one of {', '.join(LABELS)}")
    audio = Path(raw_path).expanduser()
    audio = audio if audio.is_absolute() else base / audio
    if not audio.is_file():
        raise ConfigError(f"{where}: audio file {audio} not found")
    key = _field(record, "key") or raw_path
    speaker = _field(record, "speaker", "spk")
    if not speaker:
        if not emobox:
            raise ConfigError(f"{where}: needs a speaker (the folds are speaker-independent)")
        speaker = f"utt:{key}"
    raw_gender = _field(record, "gender").lower()
    if raw_gender and raw_gender not in GENDERS:
        raise ConfigError(f"{where}: gender {raw_gender!r} is not female or male")
    duration = _field(record, "duration", "length")
    try:
        seconds = float(duration) if duration else None
    except ValueError:
        seconds = -1.0
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{where}: duration {duration!r} is not a positive number of seconds; "
                          "correct it or leave it empty (serbench reads it from the audio)")
    return Utterance(
        key=key,
        path=str(audio.resolve()),
        label=label,
        speaker=speaker,
        gender=GENDERS.get(raw_gender),
        session=_field(record, "session") or None,
        text=_field(record, "text") or None,
        duration=seconds,
        split=split or _field(record, "fold") or None,
    )


def _sources(root: Path) -> list[tuple[Path, str]]:
    """The files to read, each with the fold its utterances are tested in (EmoBox) or ''."""
    if root.is_file():
        return [(root, "")]
    for name in DEFAULT_FILES:
        if (root / name).is_file():
            return [(root / name, "")]
    found = []
    for folder in sorted(root.iterdir(), key=lambda p: p.name):
        m = FOLD_DIR.match(folder.name)
        if folder.is_dir() and m:
            found += [(p, f"fold{int(m.group(1))}") for p in sorted(folder.glob("*test*.jsonl"))]
    if not found:
        raise ConfigError(
            f"{root}: no manifest.csv, manifest.jsonl or EmoBox fold_N/*test*.jsonl files; point "
            f"--data-root at a CSV/JSONL manifest"
        )
    return found


def load_manifest(root: Path, options: Mapping[str, Any]) -> list[Utterance]:
    root = Path(root)
    audio_root = str(options.get("audio_root") or "")
    by_key: dict[str, tuple[Utterance, str]] = {}
    speaker_fold: dict[str, tuple[str, str]] = {}
    speaker_gender: dict[str, tuple[str, str]] = {}
    for path, fold in _sources(root):
        base = Path(audio_root).expanduser() if audio_root else path.parent
        for lineno, record in _records(path):
            where = f"{path}:{lineno}"
            u = _utterance(record, where, base, fold)
            if u.key in by_key:
                first, first_where = by_key[u.key]
                if fold and first.split == fold:  # EmoBox ships some folds in two spellings
                    continue
                raise ConfigError(f"{where}: key {u.key!r} already used at {first_where}")
            if u.split is not None and not u.speaker.startswith("utt:"):
                seen = speaker_fold.setdefault(u.speaker, (u.split, where))
                if seen[0] != u.split:
                    raise ConfigError(
                        f"{where}: speaker {u.speaker!r} is in fold {u.split!r} and in fold "
                        f"{seen[0]!r} ({seen[1]}); folds must be speaker-independent"
                    )
            if u.gender:
                seen_gender = speaker_gender.setdefault(u.speaker, (u.gender, where))
                if seen_gender[0] != u.gender:
                    raise ConfigError(
                        f"{where}: speaker {u.speaker!r} is {u.gender} here but {seen_gender[0]} "
                        f"at {seen_gender[1]}; give each speaker one gender"
                    )
            by_key[u.key] = (u, where)
    if not by_key:
        raise ConfigError(f"{root}: the manifest lists no utterances")
    return [u for u, _ in by_key.values()]


def folds(utterances: Sequence[Utterance], protocol: str, options: Mapping[str, Any]) -> list[Fold]:
    """``given``: a fold per ``fold`` value (else per speaker); dev = 10 % of train speakers."""
    if protocol == "given" and any(u.split for u in utterances):
        if not all(u.split for u in utterances):
            missing = next(u for u in utterances if not u.split)
            raise ConfigError(f"manifest: utterance {missing.key!r} has no fold while others do")
        return leave_one_group_out(utterances, lambda u: u.split or "", dev_speakers=0.1)
    return leave_one_group_out(utterances, lambda u: u.speaker)


def spec() -> DatasetSpec:
    return DatasetSpec(
        name=NAME,
        labels=LABELS,
        protocols={
            "given": "the manifest's folds (fold column or EmoBox fold files), else leave one "
                     "speaker out; dev = 10 % of the training speakers",
            "loso": "leave one speaker out; dev = the next speaker by id",
        },
        load_manifest=load_manifest,
        folds=folds,
        description="any corpus from a CSV/JSONL manifest (path, label, speaker, ...; EmoBox "
                    "per-fold JSONL accepted)",
        has_text=True,
        has_gender=True,
        options={"audio_root": ""},
        obtain="point --data-root at a CSV or JSONL manifest with columns path, label, speaker",
    )
