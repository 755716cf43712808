"""MSP-Podcast: ``Audios/*.wav`` and ``Labels/labels_consensus.csv`` with its official splits.

The 8 primary categories are kept (angry, sad, happy, surprised, fearful, disgusted, contempt,
neutral); ``O`` (other) and ``X`` (no agreement) have no class. ``Split_Set`` is kept as each
utterance's ``split``. Speakers the corpus marks ``Unknown`` become one pseudo-speaker per file,
so the speaker checks cannot merge strangers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping, Sequence

from serbench import ConfigError, DatasetSpec, Fold, Utterance

NAME = "msp_podcast"
EMOTIONS = {"A": "angry", "S": "sad", "H": "happy", "U": "surprised", "F": "fearful",
            "D": "disgusted", "C": "contempt", "N": "neutral"}
NO_CLASS = {"O", "X"}
LABELS = tuple(sorted(EMOTIONS.values()))
COLUMNS = {"FileName", "EmoClass", "SpkrID", "Gender", "Split_Set"}
TESTS = {"official": "Test1", "official_test2": "Test2"}


def load_manifest(root: Path, options: Mapping[str, Any]) -> list[Utterance]:
    root = Path(root)
    labels = root / "Labels" / "labels_consensus.csv"
    if not labels.is_file():
        raise ConfigError(f"{root}: no Labels/labels_consensus.csv; this is not MSP-Podcast")
    transcripts = root / "Transcripts"
    out = []
    with open(labels, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = COLUMNS - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{labels}: missing columns {', '.join(sorted(missing))}")
        for lineno, row in enumerate(reader, 2):
            name, code = (row["FileName"] or "").strip(), (row["EmoClass"] or "").strip()
            if code in NO_CLASS:
                continue
            if code not in EMOTIONS or not name.endswith(".wav"):
                raise ConfigError(f"{labels}:{lineno}: bad FileName {name!r} or EmoClass {code!r}")
            stem = name[:-4]
            speaker = (row["SpkrID"] or "").strip()
            gender = (row["Gender"] or "").strip().lower()
            text_file = transcripts / f"{stem}.txt"
            out.append(
                Utterance(
                    key=stem,
                    path=f"Audios/{name}",
                    label=EMOTIONS[code],
                    speaker=speaker if speaker and speaker.lower() != "unknown"
                    else f"unknown:{stem}",
                    gender=gender if gender in ("female", "male") else None,
                    text=text_file.read_text(encoding="utf-8").strip()
                    if text_file.is_file() else None,
                    split=(row["Split_Set"] or "").strip(),
                )
            )
    return out


def folds(utterances: Sequence[Utterance], protocol: str, options: Mapping[str, Any]) -> list[Fold]:
    """One fold: Train / Development / Test1 (or Test2)."""
    test = TESTS[protocol]

    def keys(split: str) -> tuple[str, ...]:
        return tuple(u.key for u in utterances if u.split == split)

    return [Fold(name=test.lower(), train=keys("Train"), dev=keys("Development"), test=keys(test))]


def spec() -> DatasetSpec:
    return DatasetSpec(
        name=NAME,
        labels=LABELS,
        protocols={
            "official": "the official Train / Development / Test1 split",
            "official_test2": "the official Train / Development / Test2 split",
        },
        load_manifest=load_manifest,
        folds=folds,
        description="MSP-Podcast: natural English podcast speech, 8 categorical emotions "
                    "(licensed)",
        licence="MSP-Podcast academic licence (UT Dallas)",
        citation="Lotfian & Busso, Building naturalistic emotionally balanced speech corpus by "
                 "retrieving emotional speech from existing podcast recordings, IEEE TAC 2019",
        has_text=True,
        has_gender=True,
        dirnames=("MSP-Podcast", "MSP_Podcast", "msp_podcast"),
        obtain=(
            "MSP-Podcast is licensed: request it from the MSP lab at UT Dallas "
            "(https://ecs.utdallas.edu/research/researchlabs/msp-lab/MSP-Podcast.html) and pass "
            "--data-root pointing at the folder holding Audios/ and Labels/"
        ),
    )
