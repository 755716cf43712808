"""Re-create the fixed results folder of ``tests/test_leaderboard.py`` (and its expected tables).

    python tests/data/leaderboard/make.py

writes ``results/`` (real run records, through ``Store.write``) from simulated predictions and
then ``expected.md`` / ``expected_baseline.md`` with the ``serbench leaderboard`` command. The
folder is committed so the test does not depend on numpy's random streams; only re-create it when
the table format changes on purpose, and review the diff.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from serbench.cli import main
from serbench.run.budgets import PRESETS
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import Store

HERE = Path(__file__).resolve().parent


def make(root: Path) -> None:
    rng = np.random.default_rng(20261122)
    corpus = make_corpus(rng, n_speakers=5, per_speaker=8)
    store = Store(root)
    for method, upstream, skill, options in [("linear", "fbank", 0.2, {}),
                                             ("linear", "fbank", 0.3, {"normalize": "speaker"}),
                                             ("mlp", "fbank", 2.0, {})]:
        write_condition(store, corpus, simulate_predictions(corpus, skill, 2, rng), method,
                        upstream, options=options)
    write_condition(store, corpus, simulate_predictions(corpus, 1.0, 1, rng), "mlp", "egemaps",
                    budget=PRESETS["probe"])
    store.db_path.unlink(missing_ok=True)  # the index is rebuilt from the folders when read


if __name__ == "__main__":
    shutil.rmtree(HERE / "results", ignore_errors=True)
    make(HERE / "results")
    work = Path("/tmp/serbench-leaderboard-fixture")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(HERE / "results", work)
    main(["leaderboard", "--results", str(work), "--output", str(HERE / "expected.md")])
    main(["leaderboard", "--results", str(work), "--baseline", "linear/fbank", "--output",
          str(HERE / "expected_baseline.md")])
