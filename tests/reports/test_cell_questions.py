"""The comparison pairs of the cell questions: Semeniuta vs Gal's tied mask and zoneout vs no
dropout ("cell"), and each variant's GRU arm vs its LSTM arm ("gru"), found from arms alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.analysis import arms, compare
from reports.analysis import pairs as P
from reports.sections import appendix

# what every arm shares unless a test says otherwise (the rates conf/variant/*.yaml set)
BASE = {"model.hidden_size": "16", "model.cell": "lstm", "dropout.input": "0.25",
        "dropout.recurrent": "0.25", "dropout.output": "0.25", "dropout.granularity": "sample",
        "dropout.per_step": "False", "dropout.zoneout_cell": "0.0",
        "dropout.zoneout_hidden": "0.0"}
ZONEOUT = {"dropout.zoneout_cell": "0.5", "dropout.zoneout_hidden": "0.05"}


def _arm(variant: str, framework: str = "torch", **setting: str) -> P.Arm:
    s = {**BASE, **{k.replace("__", "."): v for k, v in setting.items()}}
    label = f"{variant} {sorted(setting.items())}" if setting else variant
    return P.Arm(f"rt|{framework}|{label}", label, "rt", framework, variant, s)


def _found(arms_: list[P.Arm]) -> list[tuple[str, str, str]]:
    return [(q, a.arm, b.arm) for q, a, b in P.pairs(arms_)]


def _questions_of(arms_: list[P.Arm], a: P.Arm, b: P.Arm) -> list[str]:
    """The questions under which the unordered pair {a, b} was found (at most one)."""
    return [q for q, x, y in P.pairs(arms_) if {x.arm, y.arm} == {a.arm, b.arm}]


def test_semeniuta_is_compared_with_keras_impl2_of_its_framework_only():
    sem_t, imp_t = _arm("semeniuta"), _arm("keras_impl2")
    sem_k, imp_k = _arm("semeniuta", "keras"), _arm("keras_impl2", "keras")
    found = _found([sem_t, imp_t, sem_k, imp_k])
    assert ("cell", sem_t.arm, imp_t.arm) in found and ("cell", sem_k.arm, imp_k.arm) in found
    assert not [f for f in found if f[1:] in ((sem_t.arm, imp_k.arm), (sem_k.arm, imp_t.arm))]
    # one rate differs: no longer a pair for the cell question (nor for any other)
    other = _arm("keras_impl2", dropout__recurrent="0.5")
    assert _questions_of([sem_t, other], sem_t, other) == []
    # a knob only semeniuta has (per_step) does not matter for keras_impl2: still comparable
    per_step = _arm("semeniuta", dropout__per_step="True")
    assert _questions_of([per_step, imp_t], per_step, imp_t) == ["cell"]


def test_zoneout_vs_none_is_a_cell_question_and_its_other_pairs_keep_theirs():
    zo, none, naive, sem = (_arm("zoneout", **ZONEOUT), _arm("none"), _arm("naive"),
                            _arm("semeniuta"))
    every = [zo, none, naive, sem]
    assert _questions_of(every, zo, none) == ["cell"]  # not "none": the cell question wins
    assert _questions_of(every, zo, naive) == ["naive"]
    assert _questions_of(every, sem, none) == ["none"]
    assert _questions_of(every, sem, naive) == ["naive"]
    # the zoneout arm is A, the baseline B
    q, a, b = next(p for p in P.pairs(every) if p[0] == "cell")
    assert (a.variant, b.variant) == ("zoneout", "none")


def test_gru_vs_lstm_for_each_variant_with_gru_as_a():
    lstm = [_arm("none"), _arm("naive"), _arm("semeniuta"), _arm("zoneout", **ZONEOUT)]
    # a GRU has no cell state: its zoneout arm has zoneout_cell 0 (refused otherwise), which
    # is not a setting of a GRU and so no difference
    gru = [_arm("none", model__cell="gru"), _arm("naive", model__cell="gru"),
           _arm("semeniuta", model__cell="gru"),
           _arm("zoneout", model__cell="gru", dropout__zoneout_hidden="0.05")]
    every = [*gru, *lstm]
    found = [(a.variant, a.setting["model.cell"], b.setting["model.cell"])
             for q, a, b in P.pairs(every) if q == "gru"]
    assert sorted(found) == sorted((v, "gru", "lstm") for v in
                                   ("none", "naive", "semeniuta", "zoneout"))
    for g, lstm_arm in zip(gru, lstm, strict=True):
        assert P.differences(g, lstm_arm) == ["model.cell"]
    # the other questions still pair arms of one cell only
    assert _questions_of(every, gru[0], lstm[1]) == []  # GRU none vs LSTM naive
    assert _questions_of(every, gru[1], gru[0]) == ["none"]
    assert _questions_of(every, gru[3], gru[0]) == ["cell"]


def test_gru_vs_lstm_needs_the_same_framework_and_every_other_setting():
    lstm = _arm("naive")
    wider = _arm("naive", model__cell="gru", model__hidden_size="32")
    keras = _arm("naive", "keras", model__cell="gru")
    other_rate = _arm("naive", model__cell="gru", dropout__input="0.5")
    for x in (wider, keras, other_rate):
        assert _questions_of([lstm, x], lstm, x) == [], x.label
    # zoneout_hidden is a rate of both cells: a different one is a difference
    zo = _arm("zoneout", **ZONEOUT)
    zo_gru = _arm("zoneout", model__cell="gru", dropout__zoneout_hidden="0.1")
    assert _questions_of([zo, zo_gru], zo, zo_gru) == []
    assert P.differences(zo_gru, zo) == ["dropout.zoneout_hidden", "model.cell"]


def test_pairs_come_grouped_in_the_order_of_questions():
    every = [_arm(v, f, **extra) for f in ("torch", "keras") for v, extra in (
        ("none", {}), ("naive", {}), ("keras_impl0", {}), ("keras_impl2", {}),
        ("semeniuta", {}), ("zoneout", ZONEOUT), ("naive", {"model__cell": "gru"}),
        ("keras_impl2", {"dropout__granularity": "batch"}), ("none", {"model__size": "x"}))]
    questions = [q for q, _, _ in P.pairs(every)]
    order = list(P.QUESTIONS)
    assert [order.index(q) for q in questions] == sorted(order.index(q) for q in questions)
    assert {"untied", "granularity", "cell", "gru", "none", "naive", "framework",
            "other"} <= set(questions)
    assert order.index("cell") < order.index("none") and order.index("gru") < order.index("other")


def test_old_lstm_runs_without_the_cell_param_pair_with_new_gru_runs():
    """Runs logged before model.cell existed lack the param: arms count them as LSTMs, so a
    GRU run of the same variant and setting is their "gru" comparison."""
    old = {"model.size": "tiny", "dropout.input": "0.25", "train.lr": "0.01", "seed": "0"}
    new = {**old, "model.cell": "gru", "train.patience": "0", "dropout.per_step": "False"}
    runs = pd.DataFrame([
        {"task": "rt", "framework": "torch", "variant": "naive", "params": old, "tags": {}},
        {"task": "rt", "framework": "torch", "variant": "naive", "params": new, "tags": {}},
        {"task": "rt", "framework": "torch", "variant": "none", "params": old, "tags": {}},
    ])
    found = arms.assign(runs)
    assert list(found["label"]) == ["naive [cell=lstm]", "naive [cell=gru]", "none [cell=lstm]"]
    arm_list = P.arm_list(found, arms.variant_order())
    got = [(q, a.label, b.label) for q, a, b in P.pairs(arm_list)]
    assert ("gru", "naive [cell=gru]", "naive [cell=lstm]") in got
    assert ("none", "naive [cell=lstm]", "none [cell=lstm]") in got
    assert len(got) == 2  # the GRU naive arm is not compared with the LSTM none arm


def test_the_appendix_names_each_question_it_lists_in_words():
    arm_list = [_arm("naive"), _arm("naive", model__cell="gru"), _arm("zoneout", **ZONEOUT),
                _arm("none")]
    rng = np.random.default_rng(0)
    per = pd.DataFrame([{"arm": a.arm, "seed": s, "test_accuracy_std": rng.normal(0.8, 0.01)}
                        for a in arm_list for s in range(3)])
    c = compare.compare(per, arm_list, "accuracy", "std")
    asked = ["cell", "gru", "none", "naive"]  # zoneout vs naive: "naive"
    assert list(dict.fromkeys(c["question"])) == asked
    bullets = next(b for b in appendix.task_blocks(c) if b.startswith("- "))
    assert bullets.splitlines() == [f"- *{q}*: {P.QUESTIONS[q]}" for q in asked]
