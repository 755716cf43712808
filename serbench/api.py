"""The Python API for notebooks: a results folder as pandas DataFrames, comparisons as dicts, and
sweeps started from Python.

```python
import serbench.api as sb

sb.run("linear", "fbank", "emodb", data_root="../shared/data", folds=["03", "16"])
runs = sb.runs()                      # one row per stored run
board = sb.leaderboard(dataset="emodb")  # the numbers `serbench leaderboard` prints
sb.compare("linear/fbank", "mlp/fbank", dataset="emodb")["verdict"]
```

Every function reads or writes the same results folder as the command line (``results``, else
``$SERBENCH_RESULTS``, else ``./serbench-results``) and computes with the same functions: a
leaderboard DataFrame holds the rows of ``serbench leaderboard --format json``, a comparison the
object of ``serbench compare --json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from serbench.judge.stats import ALPHA, N_BOOT
from serbench.specs import ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

    from serbench.store import Store

SPEC_COLUMNS = ("method", "upstream", "dataset", "protocol", "fold", "seed", "budget")
RECORD_COLUMNS = ("n_train", "n_dev", "n_test", "upstream_revision", "test_hash", "created",
                  "duration_seconds", "error")


def _store(results: str | Path | None, must_exist: bool = True) -> Store:
    from serbench.store import Store, default_results

    root = Path(results or default_results())
    if must_exist and not root.is_dir():
        raise ConfigError(f"results folder {root} does not exist: run serbench.api.run(...) or "
                          "`serbench run ...` first, or pass results=DIR")
    return Store(root)


def _names(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def run_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One run.json flattened: spec columns, ``option.*``, ``budget.*``, ``usage.*``, metrics."""
    spec = record.get("spec") or {}
    row: dict[str, Any] = {"run_id": record["run_id"], "status": record.get("status")}
    row.update({k: spec.get(k) for k in SPEC_COLUMNS})
    groups = (("option", record.get("options")), ("dataset_option", spec.get("dataset_options")),
              ("budget", record.get("budget")), ("usage", record.get("usage")))
    for prefix, values in groups:
        for key, value in (values or {}).items():
            if not isinstance(value, (list, dict)):
                row[f"{prefix}.{key}"] = value
    metrics = record.get("metrics") or {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)):
            row[key] = value
    for label, recall in (metrics.get("per_class_recall") or {}).items():
        row[f"recall.{label}"] = recall
    row.update({k: record.get(k) for k in RECORD_COLUMNS})
    return row


def runs(results: str | Path | None = None) -> pd.DataFrame:
    """Every stored run, one row each (failed runs included: filter on ``status``)."""
    import pandas as pd

    rows = [run_row(r) for r in _store(results).iter_records()]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["run_id", "status", *SPEC_COLUMNS])
    return frame.sort_values(["dataset", "method", "upstream", "fold", "seed", "run_id"],
                             ignore_index=True)


def leaderboard(results: str | Path | None = None, *, dataset: str | None = None,
                budget: str | None = None, metric: str = "uar", baseline: str | None = None,
                alpha: float = ALPHA, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """The leaderboard rows, best first within each (dataset, protocol, budget) table."""
    import pandas as pd

    from serbench.judge.conditions import load_tables
    from serbench.judge.ranking import build
    from serbench.report.leaderboard import json_ready, to_rows

    boards = build(load_tables(_store(results), dataset, budget), metric, baseline, alpha,
                   n_boot, seed)
    return pd.DataFrame(json_ready(to_rows(boards)))


def compare(a: str, b: str, *, results: str | Path | None = None, dataset: str | None = None,
            budget: str | None = None, alpha: float = ALPHA, n_boot: int = N_BOOT,
            seed: int = 0) -> dict[str, Any]:
    """Paired tests of condition A against B (``method/upstream[key=value]``), with a verdict."""
    from serbench.judge.compare import compare as paired
    from serbench.report.leaderboard import json_ready

    return json_ready(paired(_store(results), a, b, dataset, budget, alpha, n_boot, seed))


def run(methods: str | Sequence[str], upstreams: str | Sequence[str], dataset: str, *,
        data_root: str | Path | None = None, protocol: str | None = None,
        budget: str | None = None, seeds: int = 3, folds: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
        dataset_options: Mapping[str, str] | None = None, results: str | Path | None = None,
        device: str | None = None, workers: int = 1, quiet: bool = True) -> pd.DataFrame:
    """Plan methods × upstreams × folds × seeds, run what is not stored yet, store each run.

    ``budget=None`` is the methods' natural budget and ``seeds`` defaults to 3, as on the command
    line. Returns one row per planned run (``status`` ok, failed or skipped) with its metrics; the
    same validation as ``serbench run`` applies, before any compute.
    """
    import pandas as pd

    from serbench.registry import collect
    from serbench.run.executors import make_executor
    from serbench.run.planning import make_plan
    from serbench.run.preflight import preflight

    store = _store(results, must_exist=False)
    plan = make_plan(collect(), methods=_names(methods), upstreams=_names(upstreams),
                     dataset=dataset, data_root=data_root, protocol=protocol, budget=budget,
                     seeds=seeds, folds=folds, options=dict(options or {}),
                     dataset_options=dataset_options, store=store)
    preflight([plan])
    outcomes = make_executor("local", workers).run([plan], store, device=device, quiet=quiet)
    rows = [{**{k: v for k, v in o.items() if k != "metrics"}, **(o["metrics"] or {})}
            for o in outcomes]
    return pd.DataFrame(rows)
