"""The HTML leaderboard in a real headless chromium: loads, sorts, links, no console errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from serbench.cli import main
from serbench.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import Store

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER.exists()),
                       reason="chromium / chromedriver not installed: run .ci/browser.sh "
                              "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    """A results folder with four conditions and the page written next to it, in ``site/``."""
    base = tmp_path_factory.mktemp("html")
    results = base / "results"
    rng = np.random.default_rng(2)
    corpus = make_corpus(rng, n_speakers=8, per_speaker=25)
    store = Store(results)
    conditions = (("linear", "fbank", 0.0), ("mlp", "fbank", 0.8),
                  ("sl_gemo", "wavlm_large", 1.6), ("emo_clap", "wavlm_large", 1.6))
    for method, upstream, skill in conditions:
        preds = simulate_predictions(corpus, skill, 2, rng)
        write_condition(store, corpus, preds, method, upstream)
    out = base / "site" / "leaderboard.html"
    args = ["leaderboard", "--results", str(results), "--baseline", "linear/fbank"]
    assert main([*args, "--format", "html", "--output", str(out)]) == 0
    json_out = base / "rows.json"
    assert main([*args, "--format", "json", "--output", str(json_out)]) == 0
    return out, results, json.loads(json_out.read_text())


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _column(table, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.TAG_NAME, "td")[index].text
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def _header(table, label: str):
    from selenium.webdriver.common.by import By

    return next(th for th in table.find_elements(By.TAG_NAME, "th") if th.text.startswith(label))


def test_page_is_self_contained(page) -> None:
    html = page[0].read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "<script>" in html and "<style>" in html


def test_sorts_links_and_logs_no_errors(page, browser) -> None:
    from selenium.webdriver.common.by import By

    out, results, rows = page
    browser.get(out.as_uri())
    assert browser.title == "serbench leaderboard"
    table = browser.find_element(By.CSS_SELECTOR, "table.board")
    by_rank = [r["condition"] for r in rows]
    assert [c.split(" ")[0] for c in _column(table, 1)] == by_rank  # served best first

    _header(table, "condition").click()
    assert [c.split(" ")[0] for c in _column(table, 1)] == sorted(by_rank)
    assert _header(table, "condition").get_attribute("aria-sort") == "ascending"
    _header(table, "condition").click()
    assert [c.split(" ")[0] for c in _column(table, 1)] == sorted(by_rank, reverse=True)

    _header(table, "Δ UAR").click()  # numbers sort as numbers, descending first; baseline last
    deltas = {r["condition"]: r["delta_vs_baseline"] for r in rows if r["delta_vs_baseline"]}
    want = sorted(deltas, key=deltas.get, reverse=True) + ["linear/fbank"]
    assert [c.split(" ")[0] for c in _column(table, 1)] == want
    _header(table, "rank").click()
    assert [int(x) for x in _column(table, 0)] == sorted(r["rank"] for r in rows)

    best = table.find_element(By.CSS_SELECTOR, "tr.best td:nth-child(2)")
    assert best.text == rows[0]["condition"]
    assert "alpha 0.05" in browser.find_element(By.CSS_SELECTOR, "p.signature").text
    marks = [r["condition"] for r in rows if r["not_worse_than_best"] and not r["best"]]
    assert [c[:-2] for c in _column(table, 1) if c.endswith(" †")] == marks

    links = table.find_elements(By.CSS_SELECTOR, "tbody tr:first-child details a")
    assert len(links) == rows[0]["runs"] == 16
    href = links[0].get_attribute("href")
    run_id = href.split("/")[-2]
    assert run_id in rows[0]["run_ids"]
    assert href == (results / "runs" / run_id / "run.json").as_uri()
    assert links[0].get_attribute("outerHTML").count('href="../results/runs/') == 1

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    browser.get(href)  # the record opens in the browser
    assert f'"run_id": "{run_id}"' in browser.find_element(By.TAG_NAME, "body").text
