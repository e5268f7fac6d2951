"""Published numbers (transcribed from docs/REFERENCES.md) and how our arms match them.

A published row is "same setting" only when one of our arms has every parameter the paper's
setting fixes and the row has no caveat that no run of this suite can remove (one seed with the
epoch picked on the test set, a different dataset, ...); otherwise the row is shown beside our
closest arm and labelled "different setting", naming what differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from reports import fmt

FULL_DATA = {"task.train_limit": None, "task.eval_limit": None}


def _sgd(bptt: int, clip: float, epochs: int, decay: float, start: int, init: float,
         size: int) -> dict:
    """Zaremba/Gal SGD settings in this suite's convention. The papers' lr 1 and clip act on the
    loss summed over the unrolled steps; this suite averages over tokens, so the same updates
    need lr x bptt and clip / bptt (as conf/preset/ptb_* do)."""
    return {"train.optimizer": "sgd", "task.batch_size": 20, "model.num_layers": 2,
            **FULL_DATA, "task.bptt": bptt, "train.lr": 1.0 * bptt, "train.clip_norm": clip / bptt,
            "train.epochs": epochs, "train.lr_decay": decay, "train.decay_start": start,
            "model.init_scale": init, "model.hidden_size": size, "model.embed_size": size}


ZAREMBA = {
    "small": _sgd(20, 5.0, 13, 0.5, 4, 0.1, 200),
    "medium": {**_sgd(35, 5.0, 39, 1 / 1.2, 6, 0.05, 650), "dropout.input": 0.5,
               "dropout.output": 0.5},
    "large": {**_sgd(35, 10.0, 55, 1 / 1.15, 14, 0.04, 1500), "dropout.input": 0.65,
              "dropout.output": 0.65},
}
GAL_LARGE = {**_sgd(35, 10.0, 55, 1 / 1.15, 10, 0.04, 1500), "dropout.embedding": 0.3,
             "dropout.input": 0.5, "dropout.recurrent": 0.3, "dropout.output": 0.5,
             "train.weight_decay": 1e-7}
GAL_MEDIUM = {k: v for k, v in ZAREMBA["medium"].items() if not k.startswith("dropout.")}
GAL_MEDIUM_NOTE = "REFERENCES.md records only the large config of Gal's code; other medium " \
                  "settings are not checked"
PART3_RT = ("different task: Part 3 used Cornell 'scale' sentiment regression (RMSE); our rt is "
            "Rotten Tomatoes polarity classification")
AWD_NOTE = "3 layers (last 400 units), NT-ASGD, 500+ epochs, finetuning: not this suite's model"
MELIS_NOTE = "tuned 10M-parameter 1-layer LSTM; hyperparameters not in REFERENCES.md"


@dataclass(frozen=True)
class Published:
    source: str
    task: str
    setting: str
    variant: str  # our closest variant
    framework: str | None  # None: either of ours
    metric: str
    test: float
    valid: float | None = None
    mode: str = "std"  # std | mc | "" (not stated: compared with our standard evaluation)
    requires: dict = field(default_factory=dict)
    caveat: str = ""


def _rows() -> list[Published]:
    z, g = "Zaremba et al. 2014", "Gal & Ghahramani 2016"
    rows = [
        Published(z, "ptb", "small, no dropout", "none", None, "perplexity", 114.5, 120.7,
                  requires=ZAREMBA["small"]),
        Published(z, "ptb", "medium, dropout 0.5", "naive", None, "perplexity", 82.7, 86.2,
                  requires=ZAREMBA["medium"]),
        Published(z, "ptb", "large, dropout 0.65", "naive", None, "perplexity", 78.4, 82.2,
                  requires=ZAREMBA["large"]),
    ]
    for size, req, note, tied, untied in (
            ("medium", GAL_MEDIUM, GAL_MEDIUM_NOTE, (79.7, 81.8, 79.0), (79.7, 81.9, 78.6)),
            ("large", GAL_LARGE, "", (75.0, 77.3, 74.1), (75.2, 77.9, 73.4))):
        for name, variant, (test, valid, mc) in (("tied", "keras_impl2", tied),
                                                 ("untied", "keras_impl1", untied)):
            rows.append(Published(g, "ptb", f"{size}, variational {name}", variant, None,
                                  "perplexity", test, valid, requires=req, caveat=note))
            rows.append(Published(g, "ptb", f"{size}, variational {name}, MC (1000 passes)",
                                  variant, None, "perplexity", mc, None, "mc",
                                  {**req, "train.mc_samples": 1000}, note))
    rows += [
        Published("Merity et al. 2017", "ptb", "AWD-LSTM, no finetuning", "weightdrop", None,
                  "perplexity", 58.8, 60.7, caveat=AWD_NOTE),
        Published("Merity et al. 2017", "ptb", "AWD-LSTM without weight dropping", "locked",
                  None, "perplexity", 68.9, 71.1, caveat=AWD_NOTE),
        Published("Melis et al. 2017", "ptb", "10M 1-layer LSTM (variational dropout)", "locked",
                  None, "perplexity", 59.6, 61.8, caveat=MELIS_NOTE),
    ]
    # Part 3's IMDB numbers are not here: they live in conf/preset/part3_imdb_*.yaml and reach
    # the report as each run's published.* params (reports/part3.py), one place for one fact.
    p3 = "Part 3 (seed series)"
    for fw, setting, variant, test, mode in (
            ("keras", "variational", "keras_impl0", 0.1503, "mc"),
            ("keras", "variational", "keras_impl0", 0.1510, "std"),
            ("keras", "no dropout", "none", 0.1559, ""),
            ("keras", "naive", "naive", 0.1425, ""),
            ("torch", "weight-dropped", "weightdrop", 0.1391, "mc"),
            ("torch", "weight-dropped", "weightdrop", 0.1383, "std"),
            ("torch", "no dropout", "none", 0.1422, ""),
            ("torch", "naive", "naive", 0.1402, ""),
            ("torch", "variational WeightDrop", "weightdrop_variational", 0.1454, "mc"),
            ("torch", "variational WeightDrop", "weightdrop_variational", 0.1434, "std"),
            ("torch", "locked + embedding only", "locked", 0.1404, "")):
        rows.append(Published(p3, "rt", setting, variant, fw, "rmse", test, None, mode,
                              caveat=PART3_RT))
    return rows


PUBLISHED = _rows()


def same(want, have: str | None) -> bool:
    """A logged param (always a string) against a required value, numbers with tolerance."""
    if want is None:
        return have in (None, "None", "null", "")
    if have is None:
        return False
    if isinstance(want, bool):
        return have.lower() == str(want).lower()
    if isinstance(want, int | float):
        try:
            return math.isclose(float(have), float(want), rel_tol=1e-3)
        except ValueError:
            return False
    return str(want) == have


def effective(key: str, have: str | None, task: str) -> str | None:
    """A logged null that the config resolves later (model.num_layers: 2 for the language
    model, 1 for classifiers), so it is compared as what the run actually used."""
    if key == "model.num_layers" and have in (None, "None", "null"):
        return "2" if task == "ptb" else "1"
    return have


def mismatches(row: Published, setting: dict[str, str]) -> list[str]:
    """`key ours≠theirs` for every required parameter our arm does not share."""
    out = []
    for key, want in row.requires.items():
        have = effective(key, setting.get(key), row.task)
        if not same(want, have):
            theirs = f"{want:.4g}" if isinstance(want, float) else str(want)
            out.append(f"{key.rsplit('.', 1)[-1]} {have}≠{theirs}")
    return out


def for_task(task: str) -> list[Published]:
    return [r for r in PUBLISHED if r.task == task]


def table(task: str, summary: pd.DataFrame, settings: dict[str, dict[str, str]]
          ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Published rows of `task` beside our closest arm (same variant and framework, fewest
    mismatching parameters); returns the text table and the footnotes {caveat: letter}."""
    notes: dict[str, str] = {}
    rows = []
    present = {c.removesuffix("_std_mean") for c in summary.columns if c.endswith("_std_mean")}
    for p in for_task(task):
        mode = p.mode or "std"
        reasons = []
        if p.caveat:
            notes.setdefault(p.caveat, "abcdefghijklmnopqrstuvwxyz"[len(notes) % 26])
            reasons.append(f"[{notes[p.caveat]}]")
        ours = "not run"
        cand = summary[summary["label"].str.split(" [", regex=False).str[0] == p.variant] \
            if len(summary) else summary
        if p.framework and len(cand):
            cand = cand[cand["framework"] == p.framework]
        if p.metric not in present:
            ours = f"n/a (no {fmt.metric_name(p.metric)} logged)"
        elif len(cand):
            # the closest arm of each framework (fewest mismatches, then most seeds)
            scored = sorted((len(mismatches(p, settings[r.arm])), -r.n, r.framework, r.Index)
                            for r in cand.itertuples())
            best = {}
            for _, _, framework, idx in scored:
                best.setdefault(framework, idx)
            col = f"{p.metric}_{mode}"
            ours = "; ".join(
                f"{fmt.pm(p.metric, r[col + '_mean'], r[col + '_half'])} [{mode}] "
                f"({r['label']}, {r['framework']}, n={r['n']})"
                for r in (cand.loc[i] for i in sorted(best.values(), key=list(cand.index).index)))
            miss = mismatches(p, settings[cand.loc[scored[0][3], "arm"]])
            reasons += miss[:6] + ([f"+{len(miss) - 6} more"] if len(miss) > 6 else [])
        else:
            reasons.append("no run of this variant")
        rows.append({
            "source": p.source, "published setting": p.setting,
            "closest variant": f"{p.variant} ({p.framework or 'either framework'})",
            "metric": f"test {fmt.metric_name(p.metric)}, {p.mode or 'mode not stated'}",
            "published": fmt.num(p.metric, p.test)
            + (f" (valid {fmt.num(p.metric, p.valid)})" if p.valid else ""),
            "ours": ours,
            "setting": "**same setting**" if not reasons
            else "different setting: " + "; ".join(reasons),
        })
    return pd.DataFrame(rows), notes
