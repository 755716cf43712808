"""The run record: what ``run.json`` holds, written by one typed class rather than by dict
literals in each place a run ends (a trained run, a failed run, a simulated run).

A field left :data:`ABSENT` is not written (a failed run has no metrics breakdown, a simulated one
no environment details); ``None`` is written as ``null``. docs/results.md describes each field.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping

from serbench.store import SCHEMA


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def now() -> str:
    """The creation time a record carries (UTC, seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class RunRecord:
    """One run's record, in the key order ``run.json`` has always had."""

    run_id: str
    status: str  # "ok" or "failed"
    spec: dict[str, Any]
    error: str | None = None
    schema: int = SCHEMA
    seeds: Any = ABSENT
    options: Any = ABSENT
    budget: Any = ABSENT
    usage: Any = ABSENT
    tuned: Any = ABSENT
    modality: Any = ABSENT
    transductive: Any = ABSENT
    metrics: Any = ABSENT
    labels: Any = ABSENT
    test_hash: Any = ABSENT
    data_hash: Any = ABSENT
    n_train: Any = ABSENT
    n_dev: Any = ABSENT
    n_test: Any = ABSENT
    skipped_audio: Any = ABSENT
    upstream_revision: Any = ABSENT
    method_info: Any = ABSENT  # what the method reports of its own fit (GMP-TL's k-means)
    feature_seconds: Any = ABSENT
    environment: Any = ABSENT
    created: str = field(default_factory=now)
    duration_seconds: Any = ABSENT
    references: Any = ABSENT
    cross_corpus: Any = ABSENT
    extra: dict[str, Any] = field(default_factory=dict)  # fields a caller adds (simulations)

    _FIRST: ClassVar[tuple[str, ...]] = ("schema", "run_id", "status", "error", "spec")

    def to_json(self) -> dict[str, Any]:
        """The record as ``run.json`` stores it: the fixed keys first, absent fields left out,
        ``extra`` last."""
        names = [*self._FIRST, *(f.name for f in fields(self)
                                 if f.name not in self._FIRST and f.name != "extra")]
        out = {n: getattr(self, n) for n in names if getattr(self, n) is not ABSENT}
        return {**out, **self.extra}


def as_json(record: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    """A record as a plain dict, whichever form it arrives in."""
    return record.to_json() if isinstance(record, RunRecord) else dict(record)
