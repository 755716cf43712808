"""The leaderboard page's content without a browser: escaping, published references, the
signature block, and ``serbench report`` writing the page and the PNG figures together."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serbench.judge.conditions import load_tables
from serbench.judge.ranking import build
from serbench.report.html import to_html
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import Store


def _results(root: Path, methods: tuple[str, ...], upstream: str = "fbank",
             extra: dict | None = None) -> Path:
    rng = np.random.default_rng(5)
    corpus = make_corpus(rng, n_speakers=4, per_speaker=12)
    store = Store(root)
    for i, method in enumerate(methods):
        write_condition(store, corpus, simulate_predictions(corpus, 0.5 * i, 2, rng), method,
                        upstream, extra=extra)
    return root


def _page(results: Path, **boards: object) -> str:
    return to_html(build(load_tables(Store(results)), n_boot=200, **boards), results.parent)


def test_every_name_from_results_is_text(tmp_path: Path) -> None:
    results = _results(tmp_path / "r", ("<script>alert(1)", 'x" onmouseover="alert(2)'),
                       upstream="<b>&up")
    html = _page(results)
    assert html.count("<script>") == 1  # the page's own
    assert "<b>" not in html and 'onmouseover="' not in html
    assert html.count("&lt;script&gt;alert(1)/&lt;b&gt;&amp;up") >= 4  # button, chart, matrix…
    assert 'x&quot; onmouseover=&quot;alert(2)/&lt;b&gt;&amp;up' in html


def test_published_references_sit_beside_the_measured_value(tmp_path: Path) -> None:
    results = _results(tmp_path / "r", ("linear", "mlp"))
    boards = build(load_tables(Store(results)), n_boot=200)
    row = boards[0].rows[0]
    lo, hi = row["uar_ci"]
    row["references"] = [
        {"published": 100 * (lo + hi) / 2, "metric": "UAR", "source": "Paper <i>2024</i>, table 3"},
        {"published": 100 * hi + 5, "metric": "uar", "source": "other"},
        {"published": 99.0, "metric": "WAR", "source": "a WAR claim: not on the UAR chart"}]
    html = to_html(boards, tmp_path)
    assert ">published</th>" in html and "◆ published" in html
    cell = re.search(r'<span class="ref" title="Paper &lt;i&gt;2024&lt;/i&gt;, table 3">'
                     r"([\d.]+) <small>(\w+)</small>", html)
    assert cell and cell.group(2) == "reproduced"
    assert f"{100 * hi + 5:.1f} <small>above</small>" in html
    assert html.count('<path class="ref"') == 2  # the two UAR values drawn on the chart
    page, listed = html.split('<table class="references">')  # every reference is listed below
    assert "99.0" not in page and "a WAR claim" in listed


def test_signature_block_names_the_suite_or_the_command(tmp_path: Path) -> None:
    suite = _results(tmp_path / "s", ("linear",),
                     extra={"suite": {"name": "emodb", "hash": "5e1f0c2a"}})
    assert "<code>suite emodb 5e1f0c2a</code>" in _page(suite)
    plain = _page(_results(tmp_path / "p", ("linear",)))
    assert "published" not in plain  # no references: no column, no legend
    assert ("<code>serbench run --dataset simulated --protocol loso_speaker --method linear "
            "--upstream fbank --budget smoke --seeds 2</code>") in plain
    for fact in ("<dt>seeds</dt><dd>0, 1</dd>", "<dt>folds</dt><dd>4: 0, 1, 2, 3</dd>",
                 "<dt>normalisation</dt><dd>none</dd>", "<dt>modality</dt><dd>audio</dd>",
                 "<dt>versions</dt><dd>serbench "):
        assert fact in plain


def test_report_writes_the_page_and_the_figures(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = _results(tmp_path / "results", ("linear", "mlp"))
    out = tmp_path / "site" / "report"
    done = subprocess.run([sys.executable, "-m", "serbench", "report", "--results", str(results),
                           "--output", str(out), "--n-boot", "200"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    page = out / "index.html"
    listed = done.stdout.split()
    assert listed[0] == str(page)
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figures) == len(listed) - 1 == 4  # metric, speakers, two confusion matrices
    html = page.read_text()
    links = re.findall(r'href="([^"#]+run\.json)"', html)
    assert len(links) == 2 * 2 * 4  # two conditions × 2 seeds × 4 folds
    assert all((out / link).resolve().is_file() for link in links)
    bad = subprocess.run([sys.executable, "-m", "serbench", "report", "--results",
                          str(tmp_path / "none"), "--output", str(out)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.startswith("serbench: error: results folder ")
