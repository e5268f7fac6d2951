"""The report built from a real tiny sweep in a temporary MLflow store.

Runs are trained by `experiments.run.execute` (the same code path as a sweep job, with the sweep
callback's environment), plus runs logged with MlflowClient the way crashes leave them: a FAILED
run with its failure_reason, a run still RUNNING, one that a rerun superseded (KILLED), and a
completed run with a hole in its history. Every number the report shows is checked against a
direct computation from the store with MlflowClient, numpy and scipy.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from scipy import stats as sps

from experiments import config as C
from experiments import tracking, tracking_store
from experiments.launch import PARENTS, SWEEP_ID
from experiments.run import execute
from reports import build as cli
from reports import report
from reports.analysis import health
from reports.store import history, load
from tests.conftest import TINY_RT, compose_cfg

# one xdist worker runs this module, so its module-scoped tiny sweep is made once
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("report")]

SEEDS = (0, 1, 2)
ARMS = [("none", []), ("naive", []), ("locked", []), ("locked", ["dropout.granularity=batch"])]
# small enough for ~0.5 s a run, large enough that the model learns and seeds differ
BASE = [*TINY_RT, "train.lr=0.03", "train.epochs=3", "train.mc_samples=2", "task.maxlen=20",
        "task.train_limit=192", "task.eval_limit=96", "task.batch_size=32", "train.threads=1"]


def _cfg(store: str, variant: str, extra: list[str], seed: int):
    return compose_cfg([*BASE, f"variant={variant}", *extra, f"seed={seed}",
                        f"tracking.uri={store}"])


def _broken_runs(client: MlflowClient, exp: str, store: str) -> dict[str, str]:
    """Runs as crashes leave them (logged before the sweep, like an earlier attempt)."""
    out = {}
    failed = client.create_run(exp, tags={
        "task": "rt", "framework": "torch", "variant": "locked", "seed": "0",
        "completed": "false", "mlflow.runName": "torch/locked/rt/s0"})
    out["failed"] = failed.info.run_id
    client.log_batch(out["failed"], metrics=[Metric("train_loss", 0.7, 0, 1)])
    client.set_tag(out["failed"], "failure_reason", "DivergenceError: epoch 2: loss is nan")
    client.set_terminated(out["failed"], "FAILED")
    running = client.create_run(exp, tags={
        "task": "rt", "framework": "torch", "variant": "naive", "seed": "7",
        "completed": "false", "config_hash": "never-finished"})
    out["running"] = running.info.run_id
    client.log_batch(out["running"], metrics=[Metric("train_loss", 0.69, 0, 1)])
    # an interrupted attempt of a config the sweep then redoes: execute() supersedes it
    redo = _cfg(store, "naive", [], 0)
    killed = client.create_run(exp, tags={
        "task": "rt", "framework": "torch", "variant": "naive", "seed": "0",
        "completed": "false", "config_hash": C.config_hash(redo)})
    out["superseded"] = killed.info.run_id
    # completed, but its MC history stops after epoch 1 and a test metric is missing
    holey = client.create_run(exp, tags={
        "task": "rt", "framework": "torch", "variant": "none", "seed": "5",
        "completed": "true", "config_hash": "holey"})
    out["holey"] = holey.info.run_id
    client.log_param(out["holey"], "train.epochs", "2")
    metrics = [Metric(k, 0.5, 0, s) for s in (1, 2) for k in (
        "train_loss", "epoch_seconds", "train_tokens_per_s", "valid_accuracy_std",
        "valid_log_loss_std", "valid_log_loss_mc")]
    metrics += [Metric("valid_accuracy_mc", 0.5, 0, 1), Metric("best_epoch", 1, 0, 1),
                Metric("test_accuracy_std", 0.5, 0, 1), Metric("test_log_loss_std", 0.7, 0, 1),
                Metric("test_log_loss_mc", 0.7, 0, 1)]
    client.log_batch(out["holey"], metrics=metrics)
    client.set_terminated(out["holey"], "FINISHED")
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 12-run sweep with a parent run, 4 broken runs, and the built report."""
    root = tmp_path_factory.mktemp("report")
    store = f"sqlite:///{root / 'mlflow.db'}"
    tracking_store.ensure_store(store)
    client = MlflowClient(store)
    exp = tracking.experiment_id(client, "rt", store)
    start = time.process_time()  # CPU, not wall: the test machine's cores are shared
    broken = _broken_runs(client, exp, store)
    parent = client.create_run(exp, run_name="sweep test", tags={
        "sweep_id": "test-sweep", "sweep_preset": "test", "is_sweep_parent": "true",
        "sweep_jobs": str(len(ARMS) * len(SEEDS) + 1)}).info.run_id
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PARENTS, json.dumps({"rt": parent}))
        mp.setenv(SWEEP_ID, "test-sweep")
        for variant, extra in ARMS:
            for seed in SEEDS:
                execute(_cfg(store, variant, extra, seed))
    # the sweep callback's closing summary: one job (the locked run above) failed
    for key, value in (("finished", len(ARMS) * len(SEEDS)), ("skipped", 0), ("failed", 1)):
        client.set_tag(parent, f"sweep_{key}", str(value))
    client.set_terminated(parent, "FAILED")
    # a sweep that died before its first job: a parent run left RUNNING, no children
    dead = client.create_run(exp, tags={"sweep_id": "dead-sweep", "is_sweep_parent": "true",
                                        "sweep_jobs": "4"}).info.run_id
    created = time.process_time() - start
    out = root / "out"
    data = load.load(store)
    checked = health.check(data)
    built = report.build(data, checked, out)
    assert cli.main(["--tracking-uri", store, "--out", str(out)]) == 0
    return {"store": store, "client": client, "exp": exp, "broken": broken, "parent": parent,
            "dead": dead,
            "data": data, "health": checked, "built": built, "out": out, "root": root,
            "created_s": created}


def _direct_runs(client: MlflowClient, exp: str, variant: str, granularity: str | None = None):
    """The sweep's finished runs of one variant, straight from MLflow."""
    runs = client.search_runs([exp], f"tags.variant = '{variant}' and tags.sweep_id = "
                                     "'test-sweep' and attributes.status = 'FINISHED'")
    if granularity:
        runs = [r for r in runs if r.data.params["dropout.granularity"] == granularity]
    return sorted(runs, key=lambda r: int(r.data.tags["seed"]))


def _half(values) -> float:
    low, high = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                               scale=sps.sem(values))
    return (high - low) / 2


def _label(variant: str, granularity: str | None) -> str:
    return f"{variant} [granularity={granularity}]" if granularity else variant


ARM_KEYS = [("none", None), ("naive", None), ("locked", "sample"), ("locked", "batch")]


def test_data_creation_is_quick(sweep):
    assert sweep["created_s"] < 60, f"creating the sweep took {sweep['created_s']:.0f} s CPU"


@pytest.mark.parametrize(("variant", "granularity"), ARM_KEYS)
def test_summary_numbers_equal_a_direct_computation(sweep, variant, granularity):
    client = sweep["client"]
    runs = _direct_runs(client, sweep["exp"], variant, granularity)
    assert [int(r.data.tags["seed"]) for r in runs] == list(SEEDS)
    s = sweep["built"].summaries["rt"]
    row = s[(s["label"] == _label(variant, granularity)) & (s["framework"] == "torch")]
    assert len(row) == 1
    row = row.iloc[0]
    assert row["n"] == 3 and row["seeds"] == "0,1,2"
    for metric in ("accuracy", "log_loss"):
        for mode in ("std", "mc"):
            values = [r.data.metrics[f"test_{metric}_{mode}"] for r in runs]
            assert row[f"{metric}_{mode}_mean"] == pytest.approx(np.mean(values), abs=1e-12)
            if np.std(values) > 0:
                assert row[f"{metric}_{mode}_half"] == pytest.approx(_half(values), rel=1e-9)
            else:
                assert row[f"{metric}_{mode}_half"] == 0
    best = []
    speed = []
    for r in runs:
        hist = client.get_metric_history(r.info.run_id, "valid_accuracy_std")
        top = max(hist, key=lambda m: (m.value, -m.step))  # first epoch with the best value
        assert r.data.metrics["best_epoch"] == top.step
        best.append(top.step)
        tps = client.get_metric_history(r.info.run_id, "train_tokens_per_s")
        speed.append(np.median([m.value for m in tps if m.step > 1]))
    assert row["best_epoch_mean"] == pytest.approx(np.mean(best))
    assert row["tokens_per_s_mean"] == pytest.approx(np.mean(speed), rel=1e-12)


def test_markdown_and_html_show_the_summary_numbers(sweep):
    runs = _direct_runs(sweep["client"], sweep["exp"], "naive")
    acc = np.mean([r.data.metrics["test_accuracy_std"] for r in runs]) * 100
    md = (sweep["out"] / "report.md").read_text()
    page = (sweep["out"] / "report.html").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| naive | torch | 3 |"))
    assert f"{acc:.2f}" in line
    assert f"<td>{acc:.2f}" in page or f"<b>{acc:.2f}" in page
    for section in ("1. Summary", "2. Primary questions", "3. Part 3 beside us",
                    "4. Learning curves", "5. MC dropout minus standard", "6. Cost",
                    "7. Other published numbers", "8. Run health", "9. Provenance",
                    "Appendix A. All pairwise comparisons"):
        assert f"## {section}" in md


def test_mc_minus_std_equals_direct_differences(sweep):
    client = sweep["client"]
    runs = _direct_runs(client, sweep["exp"], "naive")
    test = [r.data.metrics["test_log_loss_mc"] - r.data.metrics["test_log_loss_std"]
            for r in runs]
    valid = []
    for r in runs:
        mc = {m.step: m.value for m in client.get_metric_history(r.info.run_id,
                                                                 "valid_log_loss_mc")}
        std = {m.step: m.value for m in client.get_metric_history(r.info.run_id,
                                                                  "valid_log_loss_std")}
        valid.append(np.mean([mc[s] - std[s] for s in std]))
    m = sweep["built"].mc["rt"]
    row = m[(m["label"] == "naive") & (m["metric"] == "log_loss")].iloc[0]
    assert row["test_diff_mean"] == pytest.approx(np.mean(test), abs=1e-12)
    assert row["valid_diff_mean"] == pytest.approx(np.mean(valid), abs=1e-12)
    assert row["valid_diff_half"] == pytest.approx(_half(valid), rel=1e-9)
    none = m[(m["label"] == "none") & (m["metric"] == "accuracy")].iloc[0]
    assert none["test_diff_mean"] == 0  # one pass without dropout: MC is the standard pass
    assert len(list((sweep["out"] / "figures").glob("mc_minus_std_rt.*"))) == 2


def test_paired_comparisons_equal_scipy_and_holm(sweep):
    c = sweep["built"].comparisons["rt"]
    row = c[(c["a"] == "naive") & (c["b"] == "none")].iloc[0]
    a = [r.data.metrics["test_accuracy_std"] for r in
         _direct_runs(sweep["client"], sweep["exp"], "naive")]
    b = [r.data.metrics["test_accuracy_std"] for r in
         _direct_runs(sweep["client"], sweep["exp"], "none")]
    assert row["n"] == 3 and row["diff"] == pytest.approx(np.mean(np.subtract(a, b)))
    d = np.subtract(a, b)
    if np.std(d) > 0:
        assert row["p"] == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9)
    # Holm over the whole family, computed here independently
    p = c["p"].to_numpy()
    ok = np.isfinite(p)
    order = np.argsort(p[ok])
    adj = np.maximum.accumulate(np.minimum(1, (ok.sum() - np.arange(ok.sum())) * p[ok][order]))
    expected = np.empty(ok.sum())
    expected[order] = adj
    assert c.loc[ok, "p_holm"].to_numpy() == pytest.approx(expected)
    questions = set(c["question"])
    assert {"none", "naive", "granularity"} <= questions
    gran = c[c["question"] == "granularity"].iloc[0]
    assert (gran["a"], gran["b"]) == ("locked [granularity=sample]",
                                      "locked [granularity=batch]")
    assert all(re.search(r"(no detectable difference|is (better|worse) than|identical|"
                         r"not testable)", s) for s in c["sentence"])


def test_without_declared_questions_every_pair_is_holm_corrected_and_labelled(sweep):
    """An older sweep declares no primary comparisons: as before, all automatic pairs form one
    Holm family, the report says so, and they sit in the appendix table, not in prose."""
    c = sweep["built"].comparisons["rt"]
    assert set(c["family"]) == {"all"} and c["p_holm"].notna().sum() == c["p"].notna().sum()
    md = (sweep["out"] / "report.md").read_text()
    primary = md[md.index("## 2. Primary questions"):md.index("## 3.")]
    assert "No primary comparisons declared" in primary
    assert f"all {len(c)} automatic comparisons are Holm-corrected" in primary
    assert not any(s in md for s in c["sentence"])  # no paragraph per comparison
    appendix = md[md.index("## Appendix A"):]
    rows = [x for x in appendix.splitlines() if x.startswith("| all (Holm, none declared) |")]
    assert len(rows) == len(c)
    for r in c.itertuples():
        assert any(f"| {r.a} | {r.b} |" in x and x.rstrip(" |").endswith(r.verdict)
                   for x in rows), (r.a, r.b)


def test_failed_unfinished_killed_and_incomplete_runs_are_flagged(sweep):
    flagged = sweep["health"].flagged.set_index("run_id")
    broken = sweep["broken"]
    assert flagged.loc[broken["failed"], "category"] == "failed"
    assert "DivergenceError: epoch 2: loss is nan" in flagged.loc[broken["failed"], "problem"]
    assert flagged.loc[broken["running"], "category"] == "unfinished"
    client = sweep["client"]
    superseded = client.get_run(broken["superseded"])
    assert superseded.info.status == "KILLED"  # done by execute() when the sweep redid it
    assert flagged.loc[broken["superseded"], "category"] == "killed"
    assert "redone by run" in flagged.loc[broken["superseded"], "problem"]
    holey = flagged.loc[broken["holey"], "problem"]
    assert flagged.loc[broken["holey"], "category"] == "missing metrics"
    assert "test_accuracy_mc" in holey and "valid_accuracy_mc epochs 2" in holey
    used = set(sweep["health"].usable["run_id"])
    assert not used & set(broken.values())
    md = (sweep["out"] / "report.md").read_text()
    health_section = md[md.index("## 8. Run health"):md.index("## 9. Provenance")]
    for run_id in broken.values():
        assert run_id[:8] in health_section
    assert "loss is nan" in health_section
    assert "**Run health:" in md[:md.index("## 1. Summary")]
    summary = md[md.index("## 1. Summary"):md.index("## 2.")]
    naive = next(x for x in summary.splitlines() if x.startswith("| naive | torch |"))
    assert naive.split("|")[3].strip() == "3" and naive.rstrip(" |").endswith("2")


def test_run_health_shows_job_counts_as_integers(sweep):
    """The dead sweep logged 4 jobs and never closed: its row reads 4, not 4.0, and the counts
    it never logged read as a dash."""
    md = (sweep["out"] / "report.md").read_text()
    health_section = md[md.index("## 8. Run health"):md.index("## 9. Provenance")]
    row = next(x for x in health_section.splitlines() if x.startswith("| dead-sweep |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = next(x for x in health_section.splitlines() if x.startswith("| sweep id |"))
    names = [c.strip() for c in header.strip("|").split("|")]
    shown = dict(zip(names, cells, strict=True))
    assert shown["jobs"] == "4" and shown["jobs finished"] == "–"
    assert shown["runs in store"] == "0"
    test_row = next(x for x in health_section.splitlines() if x.startswith("| test-sweep |"))
    assert "| 13 | 12 | 0 | 1 |" in test_row
    assert not re.search(r"\|\s*\d+\.0\s*\|", health_section)


def test_incomplete_sweeps_are_reported(sweep):
    s = sweep["health"].sweeps.set_index("parent_run")
    assert len(s) == 2
    row = s.loc[sweep["parent"]]
    assert row["runs_completed"] == 12 and row["jobs"] == 13
    assert row["verdict"].startswith("incomplete") and "1 job(s) failed" in row["verdict"]
    dead = s.loc[sweep["dead"]]
    assert dead["runs_here"] == 0 and "never closed" in dead["verdict"]
    md = (sweep["out"] / "report.md").read_text()
    assert "**2 sweep(s) incomplete**" in md


def test_html_is_self_contained_and_figures_exist(sweep):
    out = sweep["out"]
    page = (out / "report.html").read_text()
    pngs = sorted((out / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == {p.stem for p in (out / "figures").glob("*.svg")}
    assert {"curves_rt", "mc_minus_std_rt", "cost_rt"} <= {p.stem for p in pngs}
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert not re.search(r"""(src|href)=["'](https?:|file:|//)""", page)
    assert (out / "figures" / "curves_rt.svg").read_text().lstrip().startswith("<?xml")


def test_bulk_history_read_equals_per_run_calls(sweep):
    client = sweep["client"]
    ids = list(sweep["data"].runs["run_id"])
    keys = ["train_loss", "valid_accuracy_mc"]
    bulk = history.read_histories(client, ids, keys)
    slow = history.pd.DataFrame(history._per_run(client, ids, keys),
                             columns=["run_id", "key", "step", "value", "timestamp"])
    slow = slow.sort_values(["run_id", "key", "step"]).reset_index(drop=True)
    assert bulk[["run_id", "key", "step", "value"]].equals(slow[["run_id", "key", "step",
                                                                  "value"]])


def test_filters_variant_and_sweep(sweep, tmp_path):
    assert cli.main(["--tracking-uri", sweep["store"], "--out", str(tmp_path / "v"),
                     "--variants", "naive,none"]) == 0
    md = (tmp_path / "v" / "report.md").read_text()
    summary = md[md.index("## 1. Summary"):md.index("## 2.")]
    assert "| naive | torch |" in summary and "locked" not in summary
    assert cli.main(["--tracking-uri", sweep["store"], "--out", str(tmp_path / "s"),
                     "--sweep", sweep["parent"]]) == 0
    md = (tmp_path / "s" / "report.md").read_text()
    assert "12 training runs" in md and sweep["broken"]["failed"][:8] not in md
    data = load.load(sweep["store"], load.Filters(sweep="test-sweep", frameworks=["torch"]))
    assert len(data.runs) == 12 and list(data.parents["run_id"]) == [sweep["parent"]]


def test_cli_errors(sweep, tmp_path, capsys):
    assert cli.main(["--tracking-uri", f"sqlite:///{tmp_path / 'absent.db'}"]) == 2
    assert "no MLflow store" in capsys.readouterr().err
    assert cli.main(["--tracking-uri", sweep["store"], "--out", str(tmp_path / "x"),
                     "--task", "ptb"]) == 1
    assert "no training runs" in capsys.readouterr().err
    assert cli.main(["--tracking-uri", sweep["store"], "--experiment", "nope"]) == 2
    assert "not in store" in capsys.readouterr().err


def test_report_files_are_rewritten_not_appended(sweep, tmp_path):
    out = Path(tmp_path / "again")
    for _ in range(2):
        assert cli.main(["--tracking-uri", sweep["store"], "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert md.count("## 1. Summary") == 1


def test_stale_figures_of_an_earlier_report_are_removed(sweep, tmp_path):
    out = tmp_path / "r"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "curves_ptb.png").write_bytes(b"old")
    (out / "figures" / "notes.txt").write_text("mine")
    assert cli.main(["--tracking-uri", sweep["store"], "--out", str(out)]) == 0
    assert not (out / "figures" / "curves_ptb.png").exists()
    assert (out / "figures" / "notes.txt").exists() and (out / "figures" / "curves_rt.png").exists()


def test_figures_rendered_in_workers_equal_inline_ones(sweep, tmp_path, monkeypatch):
    outs = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("REPORT_WORKERS", workers)
        out = tmp_path / workers
        assert cli.main(["--tracking-uri", sweep["store"], "--out", str(out)]) == 0
        outs[workers] = out
    for path in sorted((outs["1"] / "figures").iterdir()):
        assert path.read_bytes() == (outs["2"] / "figures" / path.name).read_bytes(), path.name

    def body(out):  # without the provenance line that holds the generation time
        return [x for x in (out / "report.md").read_text().splitlines()
                if not x.startswith("| report |")]

    assert body(outs["1"]) == body(outs["2"])
