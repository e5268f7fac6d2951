"""One writer, one spelling: experiments/tracking.py owns every MLflow write and every tag name,
experiments/metrics.py every metric name, and the default store is defined once
(experiments/tracking_store.py).

The checks parse the source of experiments/ and reports/ (nothing is imported or run but the last
test), and each is first shown to catch a planted violation, so none passes by finding nothing.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments import metrics as M
from experiments import tracking as T
from experiments import tracking_store

REPO = Path(__file__).resolve().parents[2]
TRACKING = "experiments/tracking.py"
TRACKING_STORE = "experiments/tracking_store.py"  # where the default store is defined
METRICS = "experiments/metrics.py"

# MLflow calls that write to a store (fluent API and MlflowClient alike)
WRITE_APIS = {
    "autolog", "create_experiment", "create_run", "delete_experiment", "delete_experiment_tag",
    "delete_run", "delete_tag", "end_run", "log_artifact", "log_artifacts", "log_batch",
    "log_dict", "log_figure", "log_image", "log_input", "log_inputs", "log_metric", "log_metrics",
    "log_model", "log_param", "log_params", "log_table", "log_text", "rename_experiment",
    "restore_experiment", "restore_run", "set_experiment", "set_experiment_tag",
    "set_experiment_tags", "set_tag", "set_tags", "set_terminated", "start_run", "update_run",
}
# Tag names spelled nowhere but in tracking.py, not even as a DataFrame column: a column the
# report takes from a tag is named by the tag's constant.
DISTINCT_TAGS = {
    T.CONFIG_HASH, T.COMPLETED, T.SELECT_ON, T.GIT_COMMIT, T.CPU_MODEL, T.CPU_COUNT, T.SWEEP_ID,
    T.FAILURE_REASON, T.SUPERSEDED_BY, T.IS_SWEEP_PARENT, T.SWEEP_PRESET, T.SWEEP_JOBS,
    T.SWEEP_OVERRIDES, T.SWEEP_KEY, T.PRIMARY, T.BENCH_ID, T.RUN_NAME, T.PARENT_RUN_ID,
    T.TUNED_FROM, *(T.sweep_count_tag(s) for s in T.JOB_STATUSES),
}
# Tag names that are also ordinary words (a column, a config group, a CLI option): checked only
# where they name a tag, i.e. as a key of a run's tags, a search clause or a `tags=` dict.
WORD_TAGS = {T.TASK, T.FRAMEWORK, T.VARIANT, T.SEED, T.PRESET, T.PID, T.HOST, T.SHAPE, T.THREADS}
# Metric names spelled nowhere but in metrics.py. Not `lr`: also the config key train.lr.
METRIC_NAMES = {*M.PER_EPOCH, M.BEST_EPOCH, M.EPOCHS_RUN} - {M.LR}
# The benchmark's own table columns and metrics of experiment `bench` (train_, train_cpu_ and
# eval_tokens_per_s, composed in experiments/bench.py); no training-run metric.
METRIC_EXEMPT = {("experiments/bench.py", M.TRAIN_TOKENS_PER_S)}
# `<split>_<metric>_<mode>` spelled out (a literal, or an f-string template with {} holes)
METRIC_KEY = re.compile(r"^(valid|test)_(\w+|\{\})_(std|mc|\{\})$")


def sources() -> list[tuple[str, ast.Module]]:
    files = sorted([*(REPO / "experiments").glob("*.py"), *(REPO / "reports").rglob("*.py")])
    assert len(files) > 20, "the scan found too few modules"
    return [(f.relative_to(REPO).as_posix(), ast.parse(f.read_text(), str(f))) for f in files]


def tracking_aliases(tree: ast.Module) -> set[str]:
    """Names a module binds to experiments.tracking (its functions may share MLflow's names)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "experiments":
            names |= {a.asname or a.name for a in node.names if a.name == "tracking"}
        elif isinstance(node, ast.Import):
            names |= {a.asname or "experiments" for a in node.names
                      if a.name == "experiments.tracking"}
    return names


def mlflow_writes(tree: ast.Module) -> Iterator[str]:
    ours = tracking_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in WRITE_APIS:
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id in ours:
                continue
            if isinstance(receiver, ast.Attribute) and ast.unparse(receiver) == \
                    "experiments.tracking":
                continue
            yield f"line {node.lineno}: {ast.unparse(node.func)}(...)"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlflow"):
            for alias in node.names:
                if alias.name in WRITE_APIS:
                    yield f"line {node.lineno}: from {node.module} import {alias.name}"


def docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            out.add(id(node.body[0].value))
    return out


def strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal but docstrings; an f-string as a template with {}
    for each replacement field (its literal parts are not reported again)."""
    skip = docstrings(tree)
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
             for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}"
                                       for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in skip and id(node) not in parts:
            yield node.lineno, node.value


def _is_tags(node: ast.expr) -> bool:
    return ast.unparse(node).split(".")[-1].endswith("tags")


def tag_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, literal) of every string literal used where a tag is named: tags.get("x"),
    tags["x"], a key of a `tags=` dict or of a dict assigned to a name ending in `tags`, and
    `tags.x` in a search clause."""
    def keys(node: ast.expr) -> Iterator[tuple[int, str]]:
        if isinstance(node, ast.Dict):
            for k in node.keys:
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    yield k.lineno, k.value

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "get" and _is_tags(f.value) \
                    and node.args and isinstance(node.args[0], ast.Constant):
                yield node.lineno, node.args[0].value
            for kw in node.keywords:
                if kw.arg == "tags":
                    yield from keys(kw.value)
        elif isinstance(node, ast.Subscript) and _is_tags(node.value) \
                and isinstance(node.slice, ast.Constant):
            yield node.lineno, node.slice.value
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith("tags") for t in node.targets):
            yield from keys(node.value)
    for line, text in strings(tree):
        for name in re.findall(r"tags\.`?([\w.]+)", text):
            yield line, name


def violations(path: str, tree: ast.Module) -> list[str]:
    found = []
    if path != TRACKING:
        found += [f"{path} {w}: an MLflow write outside {TRACKING}" for w in mlflow_writes(tree)]
        found += [f"{path} line {n}: tag name {s!r} spelled outside {TRACKING}"
                  for n, s in strings(tree) if s in DISTINCT_TAGS]
        found += [f"{path} line {n}: tag {s!r} named by a literal, not {TRACKING}'s constant"
                  for n, s in tag_uses(tree) if s in DISTINCT_TAGS | WORD_TAGS]
    if path != METRICS:
        found += [f"{path} line {n}: metric name {s!r} spelled outside {METRICS}"
                  for n, s in strings(tree)
                  if s in METRIC_NAMES and (path, s) not in METRIC_EXEMPT]
        found += [f"{path} line {n}: metric key {s!r} composed outside {METRICS} (use key())"
                  for n, s in strings(tree) if METRIC_KEY.match(s)]
    return found


PLANTED = '''
from mlflow import log_metric
from experiments import tracking

def f(client, run, runs):
    tracking.log_metrics(client, "r", {}, 1)                   # allowed: tracking's own
    client.set_tag("r", tracking.SWEEP_ID, "x")                # a write
    client.create_run("0", tags={"task": "rt"})                # a write, a literal tag
    runs["sweep_id"], run.data.tags.get("variant")             # literals
    where = f"tags.config_hash = '{run}'"                     # a literal in a clause
    return {"best_epoch": 1, f"test_{run}_std": 2}            # metric names
'''


def test_the_checks_find_planted_violations():
    found = "\n".join(violations("reports/planted.py", ast.parse(PLANTED)))
    for expected in ("line 2: from mlflow import log_metric", "line 7: client.set_tag",
                     "line 8: client.create_run", "tag 'task' named by a literal",
                     "tag name 'sweep_id' spelled", "tag 'variant' named by a literal",
                     "tag 'config_hash' named by a literal", "metric name 'best_epoch'",
                     "metric key 'test_{}_std'"):
        assert expected in found, f"{expected!r} not found in:\n{found}"
    assert "tracking.log_metrics" not in found and len(found.splitlines()) == 9, found


@pytest.mark.parametrize("path,tree", sources(), ids=lambda v: v if isinstance(v, str) else "")
def test_one_writer_and_one_spelling_of_each_name(path, tree):
    assert not violations(path, tree), "\n".join(violations(path, tree))


def test_tracking_writes_what_the_reports_read():
    """The scan is not vacuous: tracking.py does hold the writes and the names."""
    tree = ast.parse((REPO / TRACKING).read_text())
    assert {w.split(": ")[1].split("(")[0].split(".")[-1] for w in mlflow_writes(tree)} >= {
        "create_run", "log_batch", "log_artifact", "set_tag", "set_terminated",
        "create_experiment", "set_experiment_tag"}
    literals = {s for _, s in strings(tree)}
    assert DISTINCT_TAGS - {T.sweep_count_tag(s) for s in T.JOB_STATUSES} <= literals


def test_default_store_is_defined_once(monkeypatch):
    monkeypatch.delenv(tracking_store.URI_ENV, raising=False)
    default = tracking_store.REPO / "results" / "mlflow.db"
    assert tracking_store.default_uri() == f"sqlite:///{default}"
    monkeypatch.setenv(tracking_store.URI_ENV, "sqlite:////elsewhere.db")
    assert tracking_store.default_uri() == "sqlite:////elsewhere.db"
    found = []
    for path, tree in sources():
        if path == TRACKING_STORE:
            continue
        found += [f"{path} line {n}: {s!r}" for n, s in strings(tree)
                  if tracking_store.URI_ENV in s or "results/mlflow.db" in s]
        for node in ast.walk(tree):  # REPO / "results" / "mlflow.db"
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                parts = {c.value for c in ast.walk(node) if isinstance(c, ast.Constant)}
                if {"results", "mlflow.db"} <= parts:
                    found.append(f"{path} line {node.lineno}: {ast.unparse(node)}")
    assert not found, f"the default store is spelled outside {TRACKING_STORE}:\n" + "\n".join(found)


def test_reports_import_no_framework():
    """The reports read tracking's and metrics' constants: importing them (and every report
    module) must not pull in a framework; tracking.py alone not even MLflow."""
    reports = sorted(".".join(p.relative_to(REPO / "reports").with_suffix("").parts)
                     for p in (REPO / "reports").rglob("*.py") if p.stem != "__init__")
    code = (
        "import sys, importlib\n"
        "import experiments.tracking\n"
        "assert 'mlflow' not in sys.modules, 'experiments.tracking imports mlflow'\n"
        f"for name in {reports!r}:\n"
        "    importlib.import_module('reports.' + name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'tensorflow', 'keras', 'jax'))\n"
        "assert not bad, bad[:5]\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-2000:]
