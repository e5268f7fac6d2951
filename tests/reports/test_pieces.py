"""Unit tests of the report's pieces on hand-made inputs: arms, comparison design, published
matching, run health, per-run reductions, formatting and rendering."""

from __future__ import annotations

import base64
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from frameworks import rules
from reports import fmt, markdown, page
from reports.analysis import arms, compare, health, tables
from reports.analysis import pairs as P
from reports.analysis import verdicts as V
from reports.store.load import Filters, StoreData, _filter_string


def _runs(rows: list[dict]) -> pd.DataFrame:
    base = {"task": "rt", "framework": "torch", "seed": 0, "metrics": {}}
    return pd.DataFrame([{**base, **r} for r in rows])


def _params(**kw) -> dict[str, str]:
    p = {"model.size": "tiny", "model.hidden_size": "16", "dropout.granularity": "sample",
         "dropout.input": "0.25", "seed": "0", "tracking.uri": "sqlite:///x",
         "train.threads": "0", "threads": "2", "framework.name": "torch"}
    p.update({k.replace("__", "."): str(v) for k, v in kw.items()})
    return p


def test_arm_labels_show_only_what_distinguishes_runs():
    runs = _runs([
        {"variant": "locked", "params": _params()},
        {"variant": "locked", "params": _params(dropout__granularity="batch", seed=1,
                                                threads=1)},
        {"variant": "naive", "params": _params(tracking__uri="sqlite:///other")},
        {"variant": "naive", "params": _params(seed=3)},
    ])
    out = arms.assign(runs)
    assert list(out["label"]) == ["locked [granularity=sample]", "locked [granularity=batch]",
                                  "naive", "naive"]
    assert out["arm"].nunique() == 3


def test_lockstep_context_keys_are_shown_once():
    runs = _runs([
        {"variant": "none", "params": _params()},
        {"variant": "none", "params": _params(model__size="small", model__hidden_size=64)},
        {"variant": "naive", "params": _params(model__size="small", model__hidden_size=64)},
    ])
    labels = list(arms.assign(runs)["label"])
    assert labels == ["none [size=tiny]", "none [size=small]", "naive [size=small]"]


def _arm(variant: str, framework: str = "torch", **setting) -> P.Arm:
    s = {"model.hidden_size": "16", "dropout.input": "0.25", "dropout.granularity": "sample",
         "dropout.recurrent": "0.25", "dropout.weight": "0.0", **setting}
    label = variant + ("" if not setting else f" [{setting}]")
    return P.Arm(f"rt|{framework}|{label}", label, "rt", framework, variant, s)


def test_comparison_design():
    a = [_arm(v, f) for f in ("torch", "keras") for v in
         ("none", "naive", "keras_impl0", "keras_impl1", "keras_impl2", "weightdrop",
          "weightdrop_variational", "weightdrop_column")]
    batch = _arm("keras_impl2", **{"dropout.granularity": "batch"})
    bigger = _arm("naive", **{"model.hidden_size": "64"})
    pairs = P.pairs([*a, batch, bigger])
    found = {(q, x.variant, y.variant, x.framework, y.framework) for q, x, y in pairs}
    assert len({frozenset((x.arm, y.arm)) for _, x, y in pairs}) == len(pairs)  # once each
    for fw in ("torch", "keras"):
        assert ("untied", "keras_impl0", "keras_impl2", fw, fw) in found
        assert ("untied", "keras_impl0", "keras_impl1", fw, fw) in found
        assert ("weightdrop", "weightdrop_column", "weightdrop_variational", fw, fw) in found
        assert ("granularity", "keras_impl2", "weightdrop_column", fw, fw) in found
        assert ("none", "naive", "none", fw, fw) in found
        assert ("naive", "weightdrop", "naive", fw, fw) in found
        assert ("naive", "naive", "none", fw, fw) not in found
    assert ("framework", "keras_impl1", "keras_impl1", "torch", "keras") in found
    gran = [(x, y) for q, x, y in pairs if q == "granularity" and x.variant == y.variant]
    assert [(x.setting["dropout.granularity"], y.setting["dropout.granularity"])
            for x, y in gran] == [("sample", "batch")]
    # the bigger model differs from every other arm in its context: it is compared only with
    # the naive arm that differs in nothing else (a single-setting difference)
    with_bigger = [(q, x.label, y.label) for q, x, y in pairs if bigger.arm in (x.arm, y.arm)]
    assert with_bigger == [("other", "naive", bigger.label)]
    # batch-granularity impl2 vs none: granularity does not apply to none, so comparable
    assert any(q == "none" and x.arm == batch.arm for q, x, _ in pairs)


def test_rates_a_variant_does_not_use_do_not_block_a_comparison():
    wd = _arm("weightdrop", **{"dropout.weight": "0.25", "dropout.recurrent": "0.0"})
    impl2 = _arm("keras_impl2", **{"dropout.recurrent": "0.25", "dropout.weight": "0.0"})
    assert P.differences(wd, impl2) == []
    other = _arm("keras_impl2", **{"dropout.input": "0.5"})
    assert P.differences(wd, other) == ["dropout.input"]
    assert rules.applies("dropout.eval_active", "weightdrop_variational")
    assert not rules.applies("dropout.eval_active", "weightdrop")


def _row(**kw):
    base = {"a": "A", "b": "B", "framework": "torch", "metric": "perplexity", "mode": "std",
            "n": 5, "mean_a": 80.0, "mean_b": 82.0, "diff": -2.0, "low": -3.0, "high": -1.0,
            "sd": 1.0, "effect": -2.0, "p": 0.001, "p_holm": 0.004}
    base.update(kw)
    return SimpleNamespace(**base)


def test_verdicts_and_sentences_respect_the_metric_direction():
    r = _row()
    assert V.verdict(r) == "A better"  # lower perplexity is better
    assert "A is better than B" in V.sentence(r)
    acc = _row(metric="accuracy", mean_a=0.80, mean_b=0.82, diff=-0.02, low=-0.03, high=-0.01)
    assert V.verdict(acc) == "A worse" and "-2.00 pp" in V.sentence(acc)
    ns = _row(p=0.02, p_holm=0.3)
    assert V.verdict(ns) == "no detectable difference"
    assert "suggestive" in V.sentence(ns) and "up to 3.00" in V.sentence(ns)
    one = _row(n=1, p=math.nan, p_holm=math.nan, low=math.nan, high=math.nan)
    assert V.verdict(one).startswith("not testable")
    same = _row(diff=0.0, sd=0.0, p=1.0, p_holm=1.0, low=0.0, high=0.0)
    assert "identical" in V.sentence(same)


class _Row:
    def __init__(self, metrics, params, task="rt"):
        self.metrics, self.params, self.task = metrics, params, task


def test_missing_metrics_names_keys_and_epochs():
    full = {k: 1.0 for k in ("best_epoch", "test_accuracy_std", "test_accuracy_mc",
                             "test_log_loss_std", "test_log_loss_mc")}
    keys = ["train_loss", "epoch_seconds", "train_tokens_per_s", "valid_accuracy_std",
            "valid_accuracy_mc", "valid_log_loss_std", "valid_log_loss_mc"]
    steps = {k: {1, 2, 3, 4, 5} for k in keys}
    assert health.missing_metrics(_Row(full, {"train.epochs": "5"}), steps) == ""
    steps["valid_accuracy_mc"] = {1, 4}
    out = health.missing_metrics(_Row({**full, "test_accuracy_mc": math.nan},
                                      {"train.epochs": "5"}), steps)
    assert out == "missing test_accuracy_mc, valid_accuracy_mc epochs 2-3,5"


def test_per_run_cost_leaves_out_the_first_epoch():
    runs = pd.DataFrame([{"run_id": "r", "arm": "a", "label": "naive", "task": "rt",
                          "framework": "torch", "variant": "naive", "seed": 0,
                          "metrics": {"best_epoch": 2.0, "test_accuracy_std": 0.8,
                                      "test_accuracy_mc": 0.82}}])
    hist = pd.DataFrame(
        [("r", "train_tokens_per_s", s, v, 0) for s, v in ((1, 10.0), (2, 100.0), (3, 120.0),
                                                          (4, 90.0))]
        + [("r", "valid_accuracy_std", s, v, 0) for s, v in ((1, 0.5), (2, 0.6))]
        + [("r", "valid_accuracy_mc", s, v, 0) for s, v in ((1, 0.5), (2, 0.7))],
        columns=["run_id", "key", "step", "value", "timestamp"])
    per = tables.per_run(runs, hist).iloc[0]
    assert per["train_tokens_per_s"] == 100.0
    assert per["test_accuracy_diff"] == pytest.approx(0.02)
    assert per["valid_accuracy_diff"] == pytest.approx(0.05)
    assert per["valid_accuracy_mc_better"] == 0.5 and per["valid_accuracy_mc_worse"] == 0.0


def test_baseline_is_the_closest_none_arm():
    mine = {"model.hidden_size": "64", "dropout.input": "0.25"}
    cands = [("small", {"model.hidden_size": "16"}), ("same", {"model.hidden_size": "64"})]
    assert tables.baseline_arm(mine, cands) == "same"
    assert tables.baseline_arm(mine, []) is None


def test_formatting():
    assert fmt.pm("accuracy", 0.84625, 0.0031) == "84.62 ± 0.31" or \
        fmt.pm("accuracy", 0.84625, 0.0031) == "84.63 ± 0.31"
    assert fmt.pm("perplexity", 82.71, math.nan) == "82.71"
    assert fmt.num("accuracy", -0.012, signed=True) == "-1.20"
    assert fmt.with_unit("accuracy", 0.01, signed=True) == "+1.00 pp"
    assert fmt.pvalue(0.0001) == "<0.001" and fmt.pvalue(math.nan) == fmt.DASH
    assert fmt.num("perplexity", 1234.56) == "1234.6"


def test_render_escapes_and_inlines(tmp_path):
    """The page is rendered from the Markdown: escaped cells and text, bold and code inline,
    heading ids for links, a text table's class, and no markup from the text."""
    md = markdown.document("T <x>", [
        markdown.heading("1. A b"), "**bold** and `code` <script>",
        markdown.table(pd.DataFrame({"a|b": ["x|y"]}), "cap", text=True)])
    html = page.render(md, tmp_path)
    assert "| a\\|b |" in md and "| x\\|y |" in md
    assert "<b>bold</b>" in html and "<code>code</code>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'id="1-a-b"' in html and 'class="wide"' in html


def test_page_inlines_figures_and_lists_the_sections(tmp_path):
    """The page's title and table of contents come from the Markdown's headings, an image beside
    the Markdown is inlined, and a table of numbers keeps plain cells."""
    figure = tmp_path / "figures" / "f.png"
    figure.parent.mkdir()
    figure.write_bytes(b"\x89PNG not really")
    md = markdown.document("T", [markdown.heading("1. One"), "![a figure](figures/f.png)",
                                 markdown.heading("one task", 3),
                                 markdown.table(pd.DataFrame({"n": ["1"]}))])
    html = page.render(md, tmp_path)
    data = base64.b64encode(figure.read_bytes()).decode("ascii")
    assert f'src="data:image/png;base64,{data}"' in html and "figures/f.png" not in html
    assert '<li><a href="#1-one">1. One</a></li>' in html and 'href="#one-task"' not in html
    assert html.count("<h1>T</h1>") == 1 and 'id="one-task"' in html
    assert "<table>" in html and "<td>1</td>" in html


def test_sections_are_numbered_by_their_place_in_the_one_list():
    from reports import sections

    assert sections.headings() == [
        None, "1. Summary", "2. Primary questions", "3. Part 3 beside us",
        "4. Learning curves", "5. MC dropout minus standard evaluation", "6. Cost",
        "7. Other published numbers", "8. Run health", "9. Provenance",
        "Appendix A. All pairwise comparisons"]
    order = (("front", sections.answers.SECTION), ("body", sections.health.SECTION),
             ("appendix", sections.appendix.SECTION), ("appendix", sections.cost.SECTION))
    assert sections.headings(order) == [None, "1. Run health",
                                        "Appendix A. All pairwise comparisons",
                                        "Appendix B. Cost"]


def test_filter_string_pushes_single_values_and_quotes():
    assert _filter_string(Filters(tasks=["rt"])) == "tags.task = 'rt'"
    assert _filter_string(Filters(tasks=["rt", "ptb"], frameworks=["o'k"])) == \
        "tags.framework = 'o\\'k'"


def test_holm_family_per_question():
    per = pd.DataFrame({"arm": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "seed": [0, 1, 2] * 3,
                        "test_accuracy_std": [0.8, 0.82, 0.81, 0.7, 0.73, 0.71,
                                              0.75, 0.74, 0.78]})
    arms_ = [P.Arm(x, v, "rt", "torch", v, {}) for x, v in
             (("a", "naive"), ("b", "none"), ("c", "keras_impl2"))]
    task = compare.compare(per, arms_, "accuracy", "std", "task")
    question = compare.compare(per, arms_, "accuracy", "std", "question")
    assert len(task) == 3 and set(task["question"]) == {"none", "naive"}
    q = question[question["question"] == "naive"]
    assert q["p_holm"].iloc[0] == pytest.approx(q["p"].iloc[0])  # a family of one
    assert np.all(task["p_holm"] >= question["p_holm"] - 1e-15)


def _store_runs(rows: list[dict]) -> StoreData:
    base = {"experiment": "rt", "run_name": "", "status": "FINISHED", "end_time": 0,
            "task": "rt", "framework": "torch", "variant": "naive", "completed": True,
            "failure_reason": None, "superseded_by": None, "sweep_id": None,
            "parent_run_id": None, "is_sweep_parent": False, "tags": {},
            "params": {"train.epochs": "1"},
            "metrics": {k: 0.5 for k in ("best_epoch", "test_accuracy_std", "test_accuracy_mc",
                                         "test_log_loss_std", "test_log_loss_mc")}}
    runs = pd.DataFrame([{**base, **r} for r in rows])
    runs["seed"] = runs["seed"].astype("Int64")
    keys = ["train_loss", "epoch_seconds", "train_tokens_per_s", "valid_accuracy_std",
            "valid_accuracy_mc", "valid_log_loss_std", "valid_log_loss_mc"]
    hist = pd.DataFrame([(r["run_id"], k, 1, 0.5, 0) for r in rows for k in keys],
                        columns=["run_id", "key", "step", "value", "timestamp"])
    return StoreData("sqlite:///x", {"0": "rt"}, runs, hist, runs.iloc[:0])


def test_health_keeps_the_newest_duplicate_and_flags_missing_tags():
    data = _store_runs([
        {"run_id": "old", "seed": 0, "config_hash": "h", "start_time": 1},
        {"run_id": "new", "seed": 0, "config_hash": "h", "start_time": 2},
        {"run_id": "other", "seed": 1, "config_hash": "g", "start_time": 3},
        {"run_id": "noseed", "seed": None, "config_hash": "k", "start_time": 4},
        {"run_id": "nodone", "seed": 2, "config_hash": "m", "start_time": 5,
         "completed": False},
    ])
    checked = health.check(data)
    assert sorted(checked.usable["run_id"]) == ["new", "other"]
    flagged = checked.flagged.set_index("run_id")["category"].to_dict()
    assert flagged == {"old": "duplicate", "noseed": "missing tags", "nodone": "unfinished"}


def test_health_accepts_early_stops_and_mc_only_at_the_selected_epoch():
    """train.mc_every = 0 logs MC validation once, at the best epoch; an early stop ends the
    history at epochs_run (< train.epochs). Neither is a missing metric; a missing MC value
    at the best epoch still is."""
    final = {"best_epoch": 3.0, "epochs_run": 7.0, "test_accuracy_std": 0.8,
             "test_accuracy_mc": 0.8, "test_log_loss_std": 0.4, "test_log_loss_mc": 0.4}
    params = {"train.epochs": "20", "train.mc_every": "0"}
    every = {k: set(range(1, 8)) for k in ("train_loss", "epoch_seconds", "train_tokens_per_s",
                                             "valid_accuracy_std", "valid_log_loss_std")}
    best_only = {**every, "valid_accuracy_mc": {3}, "valid_log_loss_mc": {3}}
    assert health.missing_metrics(_Row(final, params), best_only) == ""
    no_mc = {**every, "valid_accuracy_mc": {1}, "valid_log_loss_mc": {3}}
    assert health.missing_metrics(_Row(final, params), no_mc) == \
        "missing valid_accuracy_mc epochs 3"
    every_second = {**params, "train.mc_every": "2"}
    assert health.missing_metrics(_Row(final, every_second), best_only) == \
        "missing valid_accuracy_mc epochs 2,4,6, valid_log_loss_mc epochs 2,4,6"
    older = {k: v for k, v in final.items() if k != "epochs_run"}  # no early stopping then
    out = health.missing_metrics(_Row(older, params), best_only)
    assert out.startswith("missing train_loss epochs 8-20")


def test_settings_outside_the_hash_never_define_an_arm():
    """The report reads the hash's key lists from frameworks/rules.py (no copy): a setting the
    hash leaves out splits no arm, and an older run without a key added later gets its
    neutral value, as MLflow logs it."""
    assert {k: str(v) for k, v in rules.ADDED_LATER.items()} == arms.ADDED_LATER
    for key in rules.NON_SEMANTIC:
        # a section (tracking, published) arrives as dotted leaves; a key as itself
        params = {(key if "." in key else f"{key}.leaf"): "x", "model.size": "tiny"}
        assert set(arms.semantic(params)) == {"model.size", *arms.ADDED_LATER}, key


def test_preset_runs_are_labelled_by_their_preset_and_published_params_split_nothing():
    base = _params(train__lr="0.001")
    runs = _runs([
        {"variant": "naive", "params": {**base, "published.setting": "a", "study.primary": "[]"},
         "tags": {"preset": "part3_imdb_torch_naive"}},
        {"variant": "naive", "params": {**base, "published.setting": "b", "seed": "1"},
         "tags": {"preset": "part3_imdb_torch_naive"}},
        {"variant": "naive", "params": _params(train__lr="0.01"), "tags": {}},
        {"variant": "naive", "params": _params(train__lr="0.1"), "tags": {}},
    ])
    out = arms.assign(runs)
    assert list(out["label"]) == ["naive [part3_imdb_torch_naive]",
                                  "naive [part3_imdb_torch_naive]", "naive [lr=0.01]",
                                  "naive [lr=0.1]"]
    assert out["arm"].nunique() == 3
    older = arms.semantic({"train.lr": "0.1"})  # logged before train.patience existed
    newer = arms.semantic({"train.lr": "0.1", "train.patience": "0", "train.mc_every": "1",
                           "train.select_on": "None"})
    assert older == newer


def test_primary_tag_parsing_and_one_family_per_restarted_sweep():
    from reports.analysis import declared as primary

    assert primary.parse("a vs b\n\n  keras/none vs torch/none  # check\nbroken") == [
        ("a", "b"), ("keras/none", "torch/none"), ("broken", "")]
    parents = pd.DataFrame([
        {"run_id": "p1", "sweep_id": "s1", "start_time": 1,
         "tags": {"sweep_preset": "part3", "primary_comparisons": "a vs b\nc vs d"}},
        {"run_id": "p2", "sweep_id": "s2", "start_time": 2,
         "tags": {"sweep_preset": "part3", "primary_comparisons": "a vs b\nc vs d"}},
        {"run_id": "p3", "sweep_id": "s3", "start_time": 3, "tags": {"sweep_preset": "cpu"}},
    ])
    assert [(d.text, d.sweep_preset) for d in primary.declared(parents)] == [
        ("a vs b", "part3"), ("c vs d", "part3")]


def test_holm_only_within_the_primary_family():
    """Two declared comparisons (one untestable) and automatic ones: Holm adjusts the declared
    family of 2 only (the untestable one counts as not rejected); the rest keep their raw p."""
    from reports.analysis.declared import Resolved

    rng = np.random.default_rng(1)
    seeds = list(range(5))
    values = {"a": 0.80, "b": 0.79, "c": 0.78}
    per = pd.DataFrame([{"arm": k, "seed": s, "test_accuracy_std": v + rng.normal(0, 0.004)
                         + 0.01 * s} for k, v in values.items() for s in seeds])
    arms_ = {k: P.Arm(k, k, "rt", "torch", v, {}) for k, v in
             (("a", "naive"), ("b", "none"), ("c", "keras_impl2"))}
    declared = [Resolved("A vs B", arms_["a"], arms_["b"]),
                Resolved("A vs X", arms_["a"], None, "no usable run of X")]
    c = compare.compare(per, list(arms_.values()), "accuracy", "std", primary=declared)
    first = c[c["family"] == "primary"]
    g = per.pivot(index="seed", columns="arm", values="test_accuracy_std")
    p_ab = sps.ttest_rel(g["a"], g["b"]).pvalue
    assert first["p"].iloc[0] == pytest.approx(p_ab)
    assert first["p_holm"].iloc[0] == pytest.approx(min(1.0, 2 * p_ab))  # family of 2
    assert math.isnan(first["p_holm"].iloc[1]) and "not testable" in first["verdict"].iloc[1]
    rest = c[c["family"] == "exploratory"]
    assert len(rest) == 2 and rest["p_holm"].isna().all()  # a-c, c-b: naive/none questions
    for r in rest.itertuples():
        assert r.p == pytest.approx(sps.ttest_rel(g[r.a], g[r.b]).pvalue)
        assert "uncorrected" in r.verdict
    without = compare.compare(per, list(arms_.values()), "accuracy", "std")
    assert set(without["family"]) == {"all"} and without["p_holm"].notna().all()


def test_a_superseded_sweep_parent_is_not_called_incomplete():
    """A sweep killed mid-way whose rerun closed its parent (KILLED, superseded_by): the
    health table says where it went on, and only the unfinished live sweep is incomplete."""
    import pandas as pd

    from reports.analysis.health import sweep_health
    from reports.store.load import StoreData

    parents = pd.DataFrame([
        {"run_id": "old0000000", "sweep_id": "s1", "experiment": "imdb", "status": "KILLED",
         "tags": {"superseded_by": "new1111111", "sweep_jobs": "40", "sweep_preset": "part3"}},
        {"run_id": "new1111111", "sweep_id": "s2", "experiment": "imdb", "status": "RUNNING",
         "tags": {"sweep_jobs": "40", "sweep_preset": "part3"}},
    ])
    runs = pd.DataFrame([{"parent_run_id": "old0000000", "sweep_id": "s1", "experiment": "imdb",
                          "completed": True, "status": "FINISHED"}])
    data = StoreData("sqlite:///results/mlflow.db", {"1": "imdb"}, runs, pd.DataFrame(), parents)
    verdicts = sweep_health(data).set_index("parent_run")["verdict"]
    assert verdicts["old0000000"] == "superseded by the rerun's parent new11111"
    assert verdicts["new1111111"].startswith("incomplete") and "never closed" in \
        verdicts["new1111111"]


def test_primary_difference_over_seeds_and_test_examples_from_logged_predictions():
    """With both arms' test predictions for every paired seed, a primary comparison carries the
    interval over seeds and test examples, computed here from the per-example differences by
    the variance decomposition written out (not the report's helper): wider than the seeds-only
    interval when the examples disagree."""
    import numpy as np
    from scipy import stats as sps

    from reports.analysis import compare
    from reports.analysis.declared import Resolved

    rng = np.random.default_rng(2)
    n_examples, seeds = 400, [0, 1, 2, 3, 4]
    labels = rng.integers(0, 2, n_examples)
    preds, rows = {}, []
    for arm, shift in (("a", 0.08), ("b", 0.0)):
        for s in seeds:
            p_true = np.clip(rng.uniform(0.2, 0.9, n_examples) + shift, 0.01, 0.99)
            preds.setdefault(arm, {})[s] = np.column_stack([labels, p_true, p_true])
            rows.append({"arm": arm, "seed": s, "test_accuracy_std": float(np.mean(p_true > 0.5)),
                         "run_hours": 0.1})
    per = pd.DataFrame(rows)
    arms = [P.Arm(x, x, "imdb", "torch", "none", {}) for x in ("a", "b")]
    declared = [Resolved("a vs b", arms[0], arms[1])]
    c = compare.compare(per, arms, "accuracy", "std", primary=declared, predictions=preds)
    r = c[c["family"] == "primary"].iloc[0]
    d = np.stack([(preds["a"][s][:, 1] > 0.5).astype(float) - (preds["b"][s][:, 1] > 0.5)
                  for s in seeds])
    v1 = d.mean(axis=1).var(ddof=1) / len(seeds)
    v2 = d.mean(axis=0).var(ddof=1) / n_examples
    df = (v1 + v2) ** 2 / (v1 ** 2 / (len(seeds) - 1) + v2 ** 2 / (n_examples - 1))
    half = sps.t.ppf(0.975, df) * np.sqrt(v1 + v2)
    assert (r.low_both, r.high_both) == (pytest.approx(d.mean() - half),
                                         pytest.approx(d.mean() + half))
    assert r.high_both - r.low_both > r.high - r.low
    assert "over seeds and test examples together" in r.sentence
    # an arm without predictions for a paired seed: no such interval, said in the table
    del preds["b"][3]
    c = compare.compare(per, arms, "accuracy", "std", primary=declared, predictions=preds)
    assert np.isnan(c[c["family"] == "primary"].iloc[0].low_both)
