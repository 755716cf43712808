"""The HTML leaderboard in a real headless chromium: loads, sorts table and chart together, expands
a condition's confusion matrix, shows every pair's Δ, and stays small and fast at 40 × 25 runs.

A screenshot at 1300 × 900 is saved to ``test-artifacts/leaderboard.png`` in the repository (git
ignores the folder).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from serbench.cli import main
from serbench.judge.compare import compare
from serbench.judge.text import delta_text
from serbench.run.simulate import make_corpus, simulate_predictions, write_condition
from serbench.store import Store

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER.exists()),
                       reason="chromium / chromedriver not installed: run .ci/browser.sh "
                              "(apt-get install chromium chromium-driver)"),
]

EVIL = "<script>window.pwned=1"  # unescaped, it would swallow the page into a script


def _write(results: Path, conditions, n_speakers: int, per_speaker: int, seeds: int,
           seed: int = 2, n_folds: int | None = None) -> None:
    rng = np.random.default_rng(seed)
    corpus = make_corpus(rng, n_speakers=n_speakers, per_speaker=per_speaker, n_folds=n_folds)
    store = Store(results)
    for method, upstream, skill in conditions:
        preds = simulate_predictions(corpus, skill, seeds, rng, model_sd=0.2)
        write_condition(store, corpus, preds, method, upstream,
                        extra={"usage": {"steps": 40, "stopped_by": "max_steps"},
                               "duration_seconds": 3.5})


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    """A results folder with five conditions (one named like a script) × 8 folds × 3 seeds and
    the page written next to it, in ``site/``."""
    base = tmp_path_factory.mktemp("html")
    results = base / "results"
    _write(results, (("linear", "fbank", 0.0), ("mlp", "fbank", 0.8), (EVIL, "fbank", 0.4),
                     ("sl_gemo", "wavlm_large", 1.6), ("emo_clap", "wavlm_large", 1.6)),
           n_speakers=8, per_speaker=25, seeds=3)
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
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--window-size=1300,900"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _names(table) -> list[str]:
    """The condition column, top to bottom, without the † mark."""
    from selenium.webdriver.common.by import By

    buttons = table.find_elements(By.CSS_SELECTOR, ":scope > tbody > tr button.expand")
    return [b.text.removesuffix(" †") for b in buttons]


def _column(table, index: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.find_elements(By.TAG_NAME, "td")[index].text
            for row in table.find_elements(By.CSS_SELECTOR, ":scope > tbody > tr:not(.detail)")]


def _header(table, label: str):
    from selenium.webdriver.common.by import By

    return next(th for th in table.find_elements(By.TAG_NAME, "th")
                if th.text.replace("\n", " ").startswith(label))


def _chart_order(table) -> list[str]:
    """The forest chart's marks from top to bottom of the screen, as the conditions they draw."""
    from selenium.webdriver.common.by import By

    marks = table.find_elements(By.CSS_SELECTOR, "svg.forest")
    marks.sort(key=lambda m: m.location["y"])
    return [m.get_attribute("aria-label").split(": UAR ")[0] for m in marks]


def _errors(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_page_is_self_contained(page) -> None:
    html = page[0].read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert html.count("<script>") == 1 and "<style>" in html  # the condition's name is text
    assert "&lt;script&gt;window.pwned=1/fbank" in html


def test_sorts_table_and_chart_together_without_errors(page, browser) -> None:
    from selenium.webdriver.common.by import By

    out, results, rows = page
    browser.get(out.as_uri())
    assert browser.title == "serbench leaderboard"
    assert browser.execute_script("return window.pwned") is None  # the name did not run
    table = browser.find_element(By.CSS_SELECTOR, "table.board")
    by_rank = [r["condition"] for r in rows]
    assert _names(table) == by_rank == _chart_order(table)  # served best first
    assert f"{EVIL}/fbank" in _names(table)

    _header(table, "condition").click()
    assert _names(table) == sorted(by_rank, key=str.lower) == _chart_order(table)
    assert _header(table, "condition").get_attribute("aria-sort") == "ascending"
    _header(table, "condition").click()
    assert _names(table) == sorted(by_rank, key=str.lower, reverse=True) == _chart_order(table)

    _header(table, "Δ UAR").click()  # numbers sort as numbers, descending first; baseline last
    deltas = {r["condition"]: r["delta_vs_baseline"] for r in rows if r["delta_vs_baseline"]}
    want = sorted(deltas, key=deltas.get, reverse=True) + ["linear/fbank"]
    assert _names(table) == want == _chart_order(table)
    _header(table, "rank").click()
    assert [int(x) for x in _column(table, 0)] == sorted(r["rank"] for r in rows)
    assert _chart_order(table) == by_rank

    best = table.find_element(By.CSS_SELECTOR, "tr.best button.expand")
    assert best.text == rows[0]["condition"]
    assert table.find_element(By.CSS_SELECTOR, "tr.best svg.forest").get_attribute(
        "class") == "forest best"
    assert "alpha 0.05" in browser.find_element(By.CSS_SELECTOR, "p.signature").text
    marks = [r["condition"] for r in rows if r["not_worse_than_best"] and not r["best"]]
    assert [b.text[:-2] for b in table.find_elements(By.CSS_SELECTOR, "button.expand")
            if b.text.endswith(" †")] == marks
    assert len(table.find_elements(By.CSS_SELECTOR, "svg.forest.nw")) == len(marks)
    sig = browser.find_element(By.CSS_SELECTOR, "dl.sigblock").text
    for fact in ("seeds 0, 1, 2", "folds 8: 0, 1, 2", "normalisation none", "modality audio",
                 "budget smoke", "tests paired speaker bootstrap"):
        assert fact in sig.replace("\n", " ")
    assert _errors(browser) == []


def _counts_from_records(results: Path, run_ids: list[str]) -> Counter:
    store = Store(results)
    return Counter((p["label"], p["prediction"]) for r in run_ids
                   for p in store.read_predictions(r))


def test_expanding_a_row_shows_its_confusion_matrix_and_runs(page, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out, results, rows = page
    browser.get(out.as_uri())
    row = rows[2]
    button = next(b for b in browser.find_elements(By.CSS_SELECTOR, "button.expand")
                  if b.text.removesuffix(" †") == row["condition"])
    detail = browser.find_element(By.ID, button.get_attribute("aria-controls"))
    assert button.get_attribute("aria-expanded") == "false" and not detail.is_displayed()
    button.send_keys(Keys.ENTER)  # keyboard: a real button
    assert button.get_attribute("aria-expanded") == "true" and detail.is_displayed()

    want = _counts_from_records(results, row["run_ids"])
    conf = detail.find_element(By.CSS_SELECTOR, "table.confusion")
    labels = [th.text for th in conf.find_elements(By.CSS_SELECTOR, "thead th")][1:-2]
    got = Counter()
    for tr in conf.find_elements(By.CSS_SELECTOR, ":scope > tbody > tr"):
        true = tr.find_element(By.TAG_NAME, "th").text
        cells = tr.find_elements(By.CSS_SELECTOR, "td.heat")
        support = sum(want[(true, p)] for p in labels)
        for pred, td in zip(labels, cells, strict=True):
            got[(true, pred)] = int(td.get_attribute("data-count"))
            assert td.text == f"{100 * want[(true, pred)] / support:.0f}"  # row-normalised
            assert td.get_attribute("title") == (f"true {true}, predicted {pred}: "
                                                 f"{want[(true, pred)]} of {support}")
        recall = tr.find_element(By.CSS_SELECTOR, "td.recall").text
        assert recall == f"{100 * want[(true, true)] / support:.1f}"
    assert got == want and sum(want.values()) == 3 * 8 * 25

    speakers = detail.find_elements(By.CSS_SELECTOR, "table.speakers > tbody > tr")
    assert len(speakers) == 8
    uars = [float(tr.find_elements(By.TAG_NAME, "td")[-1].text) for tr in speakers]
    assert uars == sorted(uars)  # worst speaker first
    links = detail.find_elements(By.CSS_SELECTOR, "table.runs a")
    assert len(links) == row["runs"] == 24
    assert {a.text for a in links} == set(row["run_ids"])
    first = detail.find_element(By.CSS_SELECTOR, "table.runs > tbody > tr").text.split()
    assert first[3:6] == ["40", "3.5", "max_steps"]  # steps, seconds, stopped by
    href, run_id = links[0].get_attribute("href"), links[0].text
    assert href == (results / "runs" / run_id / "run.json").as_uri()
    assert links[0].get_attribute("outerHTML").count('href="../results/runs/') == 1

    _header(browser.find_element(By.CSS_SELECTOR, "table.board"), "condition").click()
    assert detail.is_displayed()  # the open detail moves with its row
    assert browser.execute_script(
        "return arguments[0].previousElementSibling.contains(arguments[1])", detail, button)
    button.click()
    assert button.get_attribute("aria-expanded") == "false" and not detail.is_displayed()
    assert _errors(browser) == []
    browser.get(href)  # the record opens in the browser
    assert f'"run_id": "{run_id}"' in browser.find_element(By.TAG_NAME, "body").text


def _p(title: str) -> float:
    text = re.search(r"p \(Holm, all pairs\) (\S+):", title).group(1)
    return 0.0 if text == "<0.001" else float(text)


def test_matrix_has_one_cell_per_pair_with_compares_delta(page, browser) -> None:
    from selenium.webdriver.common.by import By

    out, results, rows = page
    browser.get(out.as_uri())
    cells = browser.find_elements(By.CSS_SELECTOR, "table.matrix td[data-a]")
    names = [r["condition"] for r in rows]
    pairs = [frozenset((c.get_attribute("data-a"), c.get_attribute("data-b"))) for c in cells]
    assert len(cells) == len(names) * (len(names) - 1) // 2 == 10
    assert set(pairs) == {frozenset(p) for p in combinations(names, 2)}
    store = Store(results)
    significant = 0
    for cell in cells:
        a, b = cell.get_attribute("data-a"), cell.get_attribute("data-b")
        ref = compare(store, a, b)
        assert math.isclose(float(cell.get_attribute("data-delta")), ref["delta_uar"])
        assert cell.text == delta_text(ref["delta_uar"])
        lo, hi = ref["delta_uar_ci"]
        title = cell.get_attribute("title")
        assert title.startswith(f"{a} − {b}: ΔUAR {delta_text(ref['delta_uar'])} points, 95 % "
                                f"CI [{delta_text(lo)}, {delta_text(hi)}], p (Holm, all pairs) ")
        p_holm = _p(title)
        assert p_holm >= round(ref["p_bootstrap"], 3) - 1e-9  # Holm never lowers a p
        want = ("pos" if ref["delta_uar"] > 0 else "neg") if p_holm < 0.05 else (
            "npos" if ref["delta_uar"] > 0 else "nneg")
        assert cell.get_attribute("class") == want
        significant += p_holm < 0.05
    assert significant >= 1  # linear/fbank vs the wavlm_large conditions: a planted difference
    assert _errors(browser) == []


def test_dark_mode_print_and_screenshot(page, browser) -> None:
    from selenium.webdriver.common.by import By

    out = page[0]
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1300, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    browser.get(out.as_uri())
    body_bg = "return getComputedStyle(document.body).backgroundColor"
    assert browser.execute_script(body_bg) == "rgb(255, 255, 255)"
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    assert browser.execute_script(body_bg) == "rgb(20, 24, 28)"
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print", "features": [
        {"name": "prefers-color-scheme", "value": "light"}]})
    scroll = browser.find_element(By.CSS_SELECTOR, "div.scroll")
    assert scroll.value_of_css_property("overflow-x") == "visible"  # nothing cut off on paper
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "", "features": []})
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "leaderboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser.execute_script("return [innerWidth, innerHeight]") == [1300, 900]
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark"}]})
    browser.find_element(By.CSS_SELECTOR, "tr.best button.expand").click()
    assert browser.save_screenshot(str(ARTIFACTS / "leaderboard-dark-expanded.png"))
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "", "features": []})
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    print(f"screenshots: {shot}, {ARTIFACTS / 'leaderboard-dark-expanded.png'}")


def test_forty_conditions_by_25_runs_stay_small_and_fast(tmp_path: Path, browser) -> None:
    from selenium.webdriver.common.by import By

    results = tmp_path / "results"
    _write(results, [(f"method{i:02d}", "fbank" if i % 2 else "wavlm_large", 0.04 * i)
                     for i in range(40)], n_speakers=5, per_speaker=16, seeds=5)
    out = tmp_path / "site" / "leaderboard.html"
    started = time.perf_counter()
    assert main(["leaderboard", "--results", str(results), "--format", "html",
                 "--output", str(out)]) == 0
    written = time.perf_counter() - started
    size = out.stat().st_size
    browser.get(out.as_uri())
    load_ms = browser.execute_script(
        "var n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd;")
    print(f"40 conditions x 25 runs: page {size / 1e6:.2f} MB, loads in {load_ms:.0f} ms "
          f"(written in {written:.1f} s)")
    assert size <= 3e6
    assert 0 < load_ms <= 2000
    table = browser.find_element(By.CSS_SELECTOR, "table.board")
    assert len(table.find_elements(By.CSS_SELECTOR, ":scope > tbody > tr:not(.detail)")) == 40
    assert len(table.find_elements(By.CSS_SELECTOR, "svg.forest")) == 40
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.matrix td[data-a]")) == 780
    sort_ms = browser.execute_script(
        "var t = performance.now(); arguments[0].click(); return performance.now() - t;",
        _header(table, "condition"))
    assert _chart_order(table) == sorted(_chart_order(table))
    print(f"sorting 40 rows with their charts: {sort_ms:.0f} ms in the page")
    assert _errors(browser) == []
