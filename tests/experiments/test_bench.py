"""A tiny bench run: the table has every variant of both frameworks on the default path, and a
row for the path a machine without a compiler takes (`[eager]` in PyTorch, `[bptt]` in Keras)
for every per-step loop variant of both frameworks, with positive figures, paired ratios
with their spreads and the path that computed each row (no timing assertions: speed is
measured by `make bench`, never by tests). The statistics and the stopping rule are tested
without a framework in tests/experiments/test_bench_stats.py."""

from __future__ import annotations

import csv
import math

import pytest
from mlflow.tracking import MlflowClient

from experiments import bench
from experiments.bench_stats import CAPTION, HEAD
from frameworks import variants
from frameworks.spec import FRAMEWORK_VARIANTS

pytestmark = pytest.mark.e2e


def test_tiny_bench_covers_every_variant_and_loop_and_logs_to_mlflow(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = bench.main(["--shapes", "tiny", "--rounds", "2", "--batches", "2", "--threads", "1",
                       "--out", str(tmp_path), "--tracking-uri", store])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "bench.csv").read_text().splitlines()))
    by_arm = {(r["framework"], r["arm"]): r for r in rows}
    assert len(by_arm) == len(rows)
    for framework, names in FRAMEWORK_VARIANTS.items():
        for v in names:
            name = "stock_dropout" if v.value == "keras3_builtin" else v.value
            assert (framework, name) in by_arm
    assert ("keras", "stock_no_dropout") in by_arm

    from frameworks.torch_backend import fused_loop

    cpp = "cpp" if fused_loop.BUILD.available() else None  # else the rows say what ran instead
    step_loop = [v.value for v in FRAMEWORK_VARIANTS["torch"]
                 if variants.entry(v).runs_as == "step_loop"]
    assert {"keras_impl0", "semeniuta", "zoneout"} <= set(step_loop)
    for v in step_loop:
        default, fallback = by_arm[("torch", v)], by_arm[("torch", f"{v} [eager]")]
        assert default["loop"] == "auto" and fallback["loop"] == "eager"
        assert fallback["path"] == "eager"  # the autograd loop ran, not the fused layer
        assert default["path"] == (cpp or fallback["path"])
    from frameworks.keras_backend import native_loop

    native = "cpp" if native_loop.BUILD.available() else "tf.function"
    keras_loops = [v.value for v in FRAMEWORK_VARIANTS["keras"]
                   if variants.entry(v).runs_as == "step_loop"]
    assert {"keras_impl0", "keras_impl1", "keras_impl2", "semeniuta", "zoneout"} <= set(keras_loops)
    for v in keras_loops:
        default, fallback = by_arm[("keras", v)], by_arm[("keras", f"{v} [bptt]")]
        assert (default["loop"], fallback["loop"]) == ("auto", "bptt")
        assert (default["path"], fallback["path"]) == (native, "tf.function")
    for (framework, name), r in by_arm.items():  # Keras' compiled op computes every other
        if framework == "keras" and name.split(" ")[0] not in keras_loops:  # row as well
            assert r["loop"] == "auto"
            assert r["path"] == ("tf.function" if name.startswith("stock") else native)
        elif framework == "torch" and name.split(" ")[0] not in step_loop:
            assert r["path"] == "fused" and r["loop"] == "auto"

    for r in rows:
        assert r["rounds"] == "2" and r["stop"] == "fixed" and r["batches"] == "2"
        for key in ("train", "train_cpu", "eval"):
            assert float(r[f"{key}_tokens_per_s"]) > 0 and float(r[f"{key}_ratio"]) > 0
            assert float(r[f"{key}_ratio_spread"]) >= 0
        assert float(r["first_call_s"]) > 0 and float(r["peak_rss_mb"]) > 0
        assert (r["framework"] == "keras") != math.isnan(float(r["train_vs_stock_dropout"]))
    for framework, name in bench.BASELINE.items():
        base = by_arm[(framework, name)]
        for key in ("train", "train_cpu", "eval"):
            assert float(base[f"{key}_ratio"]) == 1.0
            assert float(base[f"{key}_ratio_spread"]) == 0.0

    table = (tmp_path / "bench.md").read_text()
    lines = table.splitlines()
    assert lines[0] == CAPTION and HEAD in lines
    body = [line for line in lines if line.startswith(("| torch |", "| keras |"))]
    assert len(body) == len(rows)
    assert all("| tiny | 2 |" in line and " ± " in line for line in body)
    assert "Rounds: torch tiny 2 (fixed), keras tiny 2 (fixed)." in lines

    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    assert len(runs) == len(rows)
    for run in runs:
        metrics = run.data.metrics
        assert metrics["train_tokens_per_s"] > 0 and "train_cpu_ratio_spread" in metrics
        assert not {"path", "loop", "stop"} & set(metrics)


def test_default_run_adds_rounds_within_its_budget(tmp_path):
    """Without --rounds the worker gets a deadline and stops by the rule: at least 3 rounds,
    then converged or out of its share (a few seconds here), never a fixed count."""
    code = bench.main(["--frameworks", "torch", "--shapes", "tiny", "--variants", "keras_impl2",
                       "--budget-min", "0.1", "--threads", "1", "--out", str(tmp_path),
                       "--no-mlflow"])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "bench.csv").read_text().splitlines()))
    assert [r["arm"] for r in rows] == ["none", "keras_impl2", "keras_impl2 [eager]"]
    assert len({(r["rounds"], r["stop"]) for r in rows}) == 1
    assert int(rows[0]["rounds"]) >= 3 and rows[0]["stop"] in ("converged", "budget")
    assert rows[0]["batches"] == str(bench.BATCHES["tiny"])
