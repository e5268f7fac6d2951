"""Unit tests of how runs become arms and which arms are compared: labels that show only
what distinguishes runs, the settings that define an arm, and the comparison design."""

from __future__ import annotations

import pandas as pd

from frameworks import rules
from reports.analysis import arms
from reports.analysis import pairs as P


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
