"""``serbench compare A B``: two conditions on the same test utterances, with a verdict.

The paired speaker bootstrap of ΔUAR with the trained models' variance decides the verdict (as it
decides the leaderboard's marks); the Wilcoxon signed-rank test over matched folds (their matched
seeds averaged) is reported beside it, and McNemar's exact test as descriptive only (it treats
utterances as independent). With one seed per fold on folds of several test speakers, or when the
two conditions tuned different options, there is no verdict and the report says why. Conditions
with different budgets, devices, frozen/fine-tuned upstreams or test sets are refused.
"""

from __future__ import annotations

import math
from typing import Any

from serbench.judge.conditions import Condition, Table, find_condition, load_tables
from serbench.judge.ranking import Samples, pair, signature, summarize
from serbench.judge.references import claimed_gains, gain_lines
from serbench.judge.stats import ALPHA, N_BOOT, PairingError, Pooled
from serbench.judge.text import (
    ci_text,
    delta_text,
    display_name,
    mean_std,
    p_text,
    pct,
    plural,
    pooled_ci,
    steps_text,
)
from serbench.specs import ConfigError
from serbench.store import Store


def _pick(
    hits_a: list[tuple[Table, Condition]], hits_b: list[tuple[Table, Condition]], a: str, b: str
) -> tuple[Table, Condition, Condition]:
    both = [(t, ca, cb) for t, ca in hits_a for t2, cb in hits_b if t is t2]
    if len(both) == 1:
        return both[0]
    if both:
        where = "; ".join(f"{t.dataset}/{t.protocol} budget {t.budget}" for t, _, _ in both)
        raise ConfigError(f"{a} and {b} both ran in several tables ({where}): choose one with "
                          "--dataset and --budget")
    sets_a = {(t.dataset, t.protocol) for t, _ in hits_a}
    shared = [(ta, tb) for ta, _ in hits_a for tb, _ in hits_b
              if (tb.dataset, tb.protocol) in sets_a and (ta.dataset, ta.protocol) ==
              (tb.dataset, tb.protocol)]
    if shared:
        ta, tb = shared[0]
        if ta.budget_signature == tb.budget_signature:
            raise ConfigError(f"{a} ran with {', '.join(ta.setup()) or 'an unrecorded setup'} and "
                              f"{b} with {', '.join(tb.setup()) or 'an unrecorded setup'} on "
                              f"{ta.dataset}: they are not compared; run both on one device type "
                              "with the upstream frozen (or fine-tuned) in both")
        raise ConfigError(f"{a} ran under budget {ta.budget} ({ta.budget_signature}) and {b} under "
                          f"budget {tb.budget} ({tb.budget_signature}) on {ta.dataset}: conditions "
                          "with different budgets are not compared; run both under one --budget")
    da = ", ".join(sorted({f"{t.dataset}/{t.protocol}" for t, _ in hits_a}))
    db = ", ".join(sorted({f"{t.dataset}/{t.protocol}" for t, _ in hits_b}))
    raise ConfigError(f"{a} ran on {da} but {b} on {db}: there is no test set to pair them on")


def refuse_unpaired(ca: Condition, cb: Condition) -> None:
    """One line saying how the two conditions' test sets differ."""
    ha, hb = ca.test_hashes(), cb.test_hashes()
    if ha == hb:
        return
    diffs = [f"fold {f}: {ha[f]} vs {hb[f]}" for f in sorted(set(ha) & set(hb)) if ha[f] != hb[f]]
    only_a, only_b = sorted(set(ha) - set(hb)), sorted(set(hb) - set(ha))
    if only_a:
        diffs.append(f"folds only in {ca.name}: {', '.join(only_a)}")
    if only_b:
        diffs.append(f"folds only in {cb.name}: {', '.join(only_b)}")
    raise PairingError(f"cannot pair {ca.name} with {cb.name} on {ca.dataset}: their test sets "
                       f"differ ({'; '.join(diffs)}); run both on the same folds of the same data")


def per_class_recall(pooled: Pooled) -> dict[str, float | None]:
    conf = pooled.confusion()
    support = conf.sum(axis=1)
    return {label: (float(conf[k, k] / support[k]) if support[k] else None)
            for k, label in enumerate(pooled.labels)}


def compare(
    store: Store, a: str, b: str, dataset: str | None = None, budget: str | None = None,
    alpha: float = ALPHA, n_boot: int = N_BOOT, seed: int = 0,
) -> dict[str, Any]:
    """Both conditions' numbers, the paired tests of A − B and a verdict (JSON-ready)."""
    tables = load_tables(store, dataset, budget)
    table, ca, cb = _pick(find_condition(tables, a), find_condition(tables, b), a, b)
    if ca is cb:
        raise ConfigError(f"{a} and {b} name the same condition: compare two different ones")
    refuse_unpaired(ca, cb)
    samples = Samples(n_boot, seed)
    notes: list[str] = []
    result = pair(ca, cb, "uar", samples, notes, alpha)
    if notes:  # not paired: labels or utterances differ
        raise PairingError(notes[0])
    sa, sb = summarize(ca, samples), summarize(cb, samples)
    ra, rb = per_class_recall(ca.pooled), per_class_recall(cb.pooled)
    sa["per_class_recall"], sb["per_class_recall"] = ra, rb
    significant = result["p_bootstrap"] is not None and result["p_bootstrap"] < alpha
    out = {
        "a": sa, "b": sb, "dataset": table.dataset, "protocol": table.protocol,
        "budget": table.budget, "budget_signature": table.budget_signature,
        "setup": table.setup(),
        "delta_uar": result["delta"], "delta_uar_ci": result["delta_ci"],
        "p_bootstrap": result["p_bootstrap"], "p_mcnemar": result["p_mcnemar"],
        "p_wilcoxon": result["p_wilcoxon"], "significant": bool(significant),
        "untested": _untested_text(result["untested"], ca, cb), "df": result["df"],
        "wilcoxon_note": result["wilcoxon_note"], "notes": ca.notes + cb.notes,
        "mcnemar_counts": {"a_right_b_wrong": result["n10"], "a_wrong_b_right": result["n01"]},
        "matched_runs": result["matched_runs"], "wilcoxon_pairs": result["wilcoxon_pairs"],
        "wilcoxon_unit": result["wilcoxon_unit"],
        "test_utterances": int(len(ca.pooled.keys)),
        "speakers": len(ca.pooled.speaker_names),
        "per_class_recall_delta": {
            k: (None if ra[k] is None or rb[k] is None else ra[k] - rb[k]) for k in ra},
        "alpha": alpha, "n_boot": n_boot, "seed": seed,
        "signature": signature(table, samples, alpha),
    }
    out["verdict"] = verdict(out)
    out["claimed_gains"] = claimed_gains(store, table, ca, cb, samples, alpha)
    return out


def _untested_text(reason: str | None, ca: Condition, cb: Condition) -> str | None:
    if reason == "tuned":
        return (f"they tuned different options ({ca.name}: {', '.join(ca.tuned) or 'nothing'}; "
                f"{cb.name}: {', '.join(cb.tuned) or 'nothing'}): tune the same ones")
    return reason


def verdict(r: dict[str, Any]) -> str:
    a, b = r["a"]["condition"], r["b"]["condition"]
    d, ci, p = r["delta_uar"], r["delta_uar_ci"], r["p_bootstrap"]
    if p is None or not math.isfinite(p):
        return (f"{a} and {b} differ by {delta_text(d)} UAR points, which cannot be tested: "
                f"{r['untested']}.")
    stats = (f"A − B = {delta_text(d)} UAR points, 95 % CI {delta_text(ci[0])} to "
             f"{delta_text(ci[1])}, paired speaker bootstrap p {_p_phrase(p)}")
    if r["significant"]:
        hi, lo = (a, b) if d > 0 else (b, a)
        return (f"{hi} beats {lo} by {abs(100 * d):.1f} UAR points ({stats}): significant at "
                f"alpha {r['alpha']:g}.")
    return (f"The difference between {a} and {b} ({stats}) is not significant at alpha "
            f"{r['alpha']:g}.")


def _wilcoxon_text(r: dict[str, Any]) -> str:
    if r["wilcoxon_note"]:
        return r["wilcoxon_note"]
    runs = plural(r["matched_runs"], "matched (fold, seed) run")
    if r["wilcoxon_unit"] == "seed":
        return f"{runs} of the one fold, paired by seed (training-seed variation only)"
    if r["wilcoxon_pairs"] == r["matched_runs"]:
        return f"{plural(r['wilcoxon_pairs'], 'fold')} ({runs})"
    return f"{plural(r['wilcoxon_pairs'], 'fold')}, seeds averaged ({runs})"


def _p_phrase(p: float | None) -> str:
    text = p_text(p)
    return text.replace("<", "< ") if text.startswith("<") else f"= {text}"


def to_text(r: dict[str, Any]) -> str:
    """The report ``serbench compare`` prints."""
    from tabulate import tabulate

    rows = [[display_name(s), s["runs"], pooled_ci(s, "uar"), mean_std(s, "uar"), pct(s["war"]),
             pct(s["macro_f1"]), steps_text(s), ", ".join(s["tuned"]) or "–"]
            for s in (r["a"], r["b"])]
    size = f"{plural(r['test_utterances'], 'test utterance')}, {plural(r['speakers'], 'speaker')}"
    setup = "".join(f" · {x}" for x in r["setup"])
    lines = [f"{r['dataset']} / {r['protocol']} · budget {r['budget']}{setup} · {size}", "",
             tabulate(rows, headers=["condition", "runs", "UAR % pooled [95 % CI]",
                                     "UAR % runs (mean ± std)", "WAR % pooled",
                                     "macro-F1 % pooled", "steps (stopped by)", "tuned"],
                      disable_numparse=True), ""]
    mc = r["mcnemar_counts"]
    boot = (f"ΔUAR {delta_text(r['delta_uar'])} points, 95 % CI {ci_text(r['delta_uar_ci'])}"
            if r["untested"] is None else f"no test: {r['untested']}")
    tests = [
        ["paired speaker bootstrap + model variance", boot, p_text(r["p_bootstrap"])],
        ["McNemar exact (descriptive)", f"A right & B wrong {mc['a_right_b_wrong']}, A wrong & B "
         f"right {mc['a_wrong_b_right']} (majority of seeds; utterances are not independent)",
         p_text(r["p_mcnemar"])],
        ["Wilcoxon signed-rank", _wilcoxon_text(r),
         p_text(r["p_wilcoxon"])],
    ]
    lines += [f"paired tests, A = {r['a']['condition']} minus B = {r['b']['condition']}:",
              tabulate(tests, headers=["test", "", "p"], disable_numparse=True), ""]
    recall = [[k, pct(r["a"]["per_class_recall"][k]), pct(r["b"]["per_class_recall"][k]),
               delta_text(v)] for k, v in r["per_class_recall_delta"].items()]
    lines += ["per-class recall % (pooled):",
              tabulate(recall, headers=["class", "A", "B", "Δ"], disable_numparse=True,
                       colalign=("left", "right", "right", "right")), ""]
    lines += [*r["notes"], f"verdict: {r['verdict']}", *gain_lines(r["claimed_gains"]),
              r["signature"]]
    return "\n".join(lines)

