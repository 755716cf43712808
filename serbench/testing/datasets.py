"""``check_dataset(spec, root)``: load a dataset plugin's manifest and folds from a corpus folder
and check what the harness relies on (labels, folds, audio that decodes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from serbench.testing.checks import Check, _describe

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass

def check_dataset(spec: Any, root: str | Path, options: dict[str, Any] | None = None,
                  sample_rate: int = 16000) -> tuple[list[Check], dict[str, Any]]:
    """Read a dataset the way a run will and check it: the manifest loads, keys are unique,
    labels are in ``spec.labels``, every file exists and decodes, genders are valid (and present
    when ``has_gender``), transcripts present when ``has_text``, and every protocol's folds pass
    serbench's fold checks. Returns the checks and the counts ``serbench data stats`` shows.
    """
    from collections import Counter

    from serbench.data.audio import AudioError, load_audio
    from serbench.data.folds import check_folds
    from serbench.data.manifests import audio_path
    from serbench.specs import GENDERS

    root = Path(root)
    opts = {**spec.options, **(options or {})}
    try:
        utts = list(spec.load_manifest(root, opts))
    except Exception as exc:  # what this check exists to report
        return [Check("manifest loads", False, _describe(exc))], {}
    checks = [Check("manifest loads", bool(utts), f"{len(utts)} utterances")]
    counts = {"utterances": len(utts), "speakers": len({u.speaker for u in utts}),
              "labels": dict(sorted(Counter(u.label for u in utts).items())),
              "genders": dict(sorted(Counter(u.gender or "unknown" for u in utts).items())),
              "folds": {}}
    twice = sorted(k for k, n in Counter(u.key for u in utts).items() if n > 1)
    checks.append(Check("keys unique", not twice, f"repeated: {', '.join(twice[:5])}" if twice
                        else f"{len(utts)} distinct keys"))
    stray = sorted({u.label for u in utts} - set(spec.labels))
    checks.append(Check("labels in the declared set", not stray,
                        f"not in {', '.join(spec.labels)}: {', '.join(stray)}" if stray
                        else ", ".join(f"{k} {v}" for k, v in counts["labels"].items())))
    bad: list[str] = []
    for u in utts:
        try:
            load_audio(audio_path(root, u), sample_rate)
        except AudioError as exc:
            bad.append(str(exc))
    checks.append(Check("files exist and decode", not bad,
                        f"{len(bad)} bad, first: {bad[0]}" if bad else f"{len(utts)} files"))
    wrong = sorted({str(u.gender) for u in utts if u.gender is not None
                    and u.gender not in GENDERS})
    missing = sum(u.gender not in GENDERS for u in utts) if spec.has_gender else 0
    checks.append(Check("genders valid", not wrong and not missing,
                        f"values {', '.join(wrong)} (allowed: {', '.join(GENDERS)})" if wrong
                        else f"{missing} utterances lack one, but has_gender=True" if missing
                        else ", ".join(f"{k} {v}" for k, v in counts["genders"].items())))
    if spec.has_text:
        lacking = sum(not u.text for u in utts)
        checks.append(Check("transcripts present", not lacking,
                            f"{lacking} utterances without text, but has_text=True"))
    for protocol in spec.protocols:
        try:
            folds = spec.folds(utts, protocol, opts)
            check_folds(spec.name, utts, folds, spec.labels)
        except Exception as exc:
            checks.append(Check(f"protocol {protocol}", False, _describe(exc)))
            continue
        counts["folds"][protocol] = [{"fold": f.name, "train": len(f.train), "dev": len(f.dev),
                                      "test": len(f.test)} for f in folds]
        checks.append(Check(f"protocol {protocol}", True, f"{len(folds)} folds pass the fold "
                            "checks (disjoint, speaker-independent, known labels)"))
    return checks, counts
