"""A tiny bench run: the table has every variant of both frameworks with positive figures
(no timing assertions: speed is measured by `make bench`, never by tests)."""

from __future__ import annotations

import csv

import pytest
from mlflow.tracking import MlflowClient

from experiments import bench
from frameworks.spec import FRAMEWORK_VARIANTS

pytestmark = pytest.mark.e2e


def test_tiny_bench_covers_every_variant_and_logs_to_mlflow(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = bench.main(["--shapes", "tiny", "--rounds", "1", "--batches", "2", "--threads", "1",
                       "--out", str(tmp_path), "--tracking-uri", store])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "bench.csv").read_text().splitlines()))
    arms = {(r["framework"], r["arm"]) for r in rows}
    for framework, variants in FRAMEWORK_VARIANTS.items():
        for v in variants:
            name = "stock_dropout" if v.value == "keras3_builtin" else v.value
            assert (framework, name) in arms
    assert ("keras", "stock_no_dropout") in arms
    for r in rows:
        assert float(r["train_tokens_per_s"]) > 0 and float(r["eval_tokens_per_s"]) > 0
        assert float(r["first_call_s"]) > 0 and float(r["peak_rss_mb"]) > 0
    baselines = [r for r in rows if r["arm"] in ("none", "stock_no_dropout")
                 and not (r["framework"] == "keras" and r["arm"] == "none")]
    assert {float(r["train_ratio"]) for r in baselines} == {1.0}
    table = (tmp_path / "bench.md").read_text()
    assert table.count("\n") == len(rows) + 2
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("bench").experiment_id])
    assert len(runs) == len(rows)
    assert all(r.data.metrics["train_tokens_per_s"] > 0 for r in runs)
