"""IEMOCAP, read from ``IEMOCAP_full_release/`` as USC distributes it.

Labels come from the summary lines of ``Session*/dialog/EmoEvaluation/<dialog>.txt`` (the only
lines starting with ``[``), transcripts from ``Session*/dialog/transcriptions/<dialog>.txt`` (CRLF),
audio from ``Session*/sentences/wav/<dialog>/<utterance>.wav``; durations come from the summary
lines' times, so listing the corpus opens no audio. The speaker's gender is the letter before the
utterance id's last three digits; the letter after ``Ses0N`` only says which actor wore the
motion-capture markers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench import ConfigError, DatasetSpec, Fold, Utterance, leave_one_group_out

NAME = "iemocap"
UTTERANCE = re.compile(
    r"^Ses0([1-5])([FM])_(impro0[1-8][ab]?|script0[1-3]_[1-3]b?)_([FM])(\d{3})$"
)
SPAN = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]$")
TRANSCRIPT = re.compile(r"^(\S+)\s*\[[^\]]*\]:\s?(.*)$")

FULL = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "ang": "angry", "sad": "sad",
    "fru": "frustrated", "sur": "surprised", "fea": "fearful", "dis": "disgusted", "oth": "other",
}
FOUR_CLASS = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}
NO_MAJORITY = "xxx"
# ``all`` keeps the utterances without a majority too, so the published 10,039 can be checked
LABEL_SETS = {"4class": FOUR_CLASS, "full": FULL, "all": {**FULL, NO_MAJORITY: "no_agreement"}}
LABELS = tuple(sorted(set(LABEL_SETS["all"].values())))
GENDER = {"F": "female", "M": "male"}


def _visible(paths: Any) -> list[Path]:
    """Sorted files, without macOS ``._`` companions or other hidden files."""
    return sorted(p for p in paths if p.is_file() and not p.name.startswith("."))


def load_manifest(root: Path, options: Mapping[str, Any]) -> list[Utterance]:
    root = Path(root)
    label_set = options.get("label_set", "4class")
    if label_set not in LABEL_SETS:
        raise ConfigError(f"iemocap option label_set={label_set!r}: use 4class, full or all")
    mapping = LABEL_SETS[label_set]
    improvised_only = bool(options.get("improvised", False))
    out: list[Utterance] = []
    for n in range(1, 6):
        session = root / f"Session{n}"
        if not session.is_dir():
            raise ConfigError(
                f"{root}: Session{n}/ is missing; point --data-root at IEMOCAP_full_release/ "
                f"(or the folder holding it) with all five sessions"
            )
        texts = _transcripts(session / "dialog" / "transcriptions")
        for label_file in _visible((session / "dialog" / "EmoEvaluation").glob("*.txt")):
            for uid, code, seconds in _summary_lines(label_file, n):
                if code not in mapping:
                    continue
                if improvised_only and "_impro" not in uid:
                    continue
                letter = UTTERANCE.match(uid).group(4)
                dialog = uid.rsplit("_", 1)[0]
                out.append(
                    Utterance(
                        key=uid,
                        path=f"Session{n}/sentences/wav/{dialog}/{uid}.wav",
                        label=mapping[code],
                        speaker=f"Ses0{n}{letter}",
                        gender=GENDER[letter],
                        session=f"Session{n}",
                        text=texts.get(uid),
                        duration=seconds,
                    )
                )
    return out


def _summary_lines(path: Path, session: int) -> list[tuple[str, str, float]]:
    """``(utterance id, label code, seconds)`` of every summary line, validated."""
    found = []
    for lineno, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        if not line.startswith("["):
            continue
        where = f"{path}:{lineno}"
        fields = [f.strip() for f in line.split("\t")]
        span = SPAN.match(fields[0])
        if len(fields) < 3 or not span:
            raise ConfigError(
                f"{where}: malformed summary line {line.strip()!r} (expected "
                f"'[start - end]<TAB>utterance<TAB>label<TAB>[V, A, D]')"
            )
        uid, code = fields[1], fields[2]
        m = UTTERANCE.match(uid)
        if not m:
            raise ConfigError(f"{where}: {uid!r} is not an IEMOCAP utterance id")
        if int(m.group(1)) != session:
            raise ConfigError(f"{where}: utterance {uid} does not belong to Session{session}")
        if code != NO_MAJORITY and code not in FULL:
            raise ConfigError(f"{where}: unknown emotion code {code!r} for {uid}")
        found.append((uid, code, round(float(span.group(2)) - float(span.group(1)), 4)))
    return found


def _transcripts(folder: Path) -> dict[str, str]:
    """Utterance id -> text; unsegmented turns (``_FXX0``) and ``M:``/``F:`` lines match no id."""
    texts: dict[str, str] = {}
    for path in _visible(folder.glob("*.txt")):
        for line in path.read_text(encoding="latin-1").splitlines():
            m = TRANSCRIPT.match(line.strip())
            if m and UTTERANCE.match(m.group(1)):
                texts[m.group(1)] = m.group(2).strip()
    return texts


def folds(utterances: Sequence[Utterance], protocol: str, options: Mapping[str, Any]) -> list[Fold]:
    """``loso``: one fold per session, dev = both speakers of the next session (cyclically), so
    dev is gender-balanced and shares no speaker nor session with test; ``loso_improvised``: the
    same on the improvised dialogues only; ``lospk``: one fold per speaker, dev = the next
    speaker by id."""
    if protocol == "loso_improvised":
        utterances = [u for u in utterances if "_impro" in u.key]
    if protocol in ("loso", "loso_improvised"):
        return leave_one_group_out(utterances, lambda u: u.session or "", dev_groups=1)
    return leave_one_group_out(utterances, lambda u: u.speaker)


def spec() -> DatasetSpec:
    return DatasetSpec(
        name=NAME,
        labels=LABELS,
        protocols={
            "loso": "5 folds, leave one session out (SUPERB / EmoBox); dev = both speakers of "
                    "the next session",
            "loso_improvised": "loso on the improvised dialogues only: the scripted ones repeat "
                               "the same scripts in every session, which text methods can learn",
            "lospk": "10 folds, leave one speaker out; dev = the next speaker by id",
        },
        load_manifest=load_manifest,
        folds=folds,
        description=(
            "IEMOCAP: dyadic acted English, 5 sessions, 10 speakers; 4-class standard set "
            "(neutral, happy+excited, angry, sad) unless label_set=full|all (licensed)"
        ),
        licence="IEMOCAP licence (USC SAIL release form)",
        citation="Busso et al., IEMOCAP: Interactive emotional dyadic motion capture database, "
                 "Language Resources and Evaluation 2008",
        has_text=True,
        has_gender=True,
        options={"label_set": "4class", "improvised": False},
        dirnames=("IEMOCAP_full_release", "IEMOCAP", "iemocap"),
        obtain=(
            "IEMOCAP is licensed: request it from USC SAIL at https://sail.usc.edu/iemocap/ and "
            "pass --data-root pointing at IEMOCAP_full_release/ or the folder holding it"
        ),
    )
