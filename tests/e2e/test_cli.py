"""The command line's promises: bad input is refused in one line with exit code 2 and nothing
written to the store; Ctrl-C is one line with exit code 130 and the run marked KILLED; `make
sweep` runs the sweeps PRESET names in order and stops at the first that fails."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY_RT
from tests.support.cli import interrupt, run_cli, runs, start, wait_for

pytestmark = pytest.mark.e2e


BAD_SINGLE = [
    (["train.epochs=0"], "train.epochs=0"),  # experiments.config.validate (SpecError)
    (["train.epochs=abc"], "train.epochs=abc"),  # Hydra: a wrong type
    (["train.epoch=3"], "train.epoch"),  # Hydra: an unknown key
    (["task.train_limit=0"], "task.train_limit=0"),  # DataError while loading
    (["train.init_from=/nonexistent/w.npz"], "/nonexistent/w.npz"),  # a plain ValueError
    (["train.init_from=0123456789abcdef"], "0123456789abcdef"),  # a run id: no store opened
    (["tracking.uri=ftp://host/x"], "tracking.uri"),  # TrackingError
    (["+study.margin.accuracy=half"], "study.margin.accuracy='half'"),  # a declared margin
    (["+study.margin.acuracy=0.005"], "study.margin.acuracy: not a metric"),
]


@pytest.mark.parametrize("overrides,needle", BAD_SINGLE, ids=[c[1] for c in BAD_SINGLE])
def test_bad_single_run_input_is_one_line_and_exit_2(tmp_path, overrides, needle):
    db = tmp_path / "mlflow.db"
    uri = [] if any(o.startswith("tracking.uri") for o in overrides) else [
        f"tracking.uri=sqlite:///{db}"]
    out = run_cli(*TINY_RT, *overrides, *uri)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refused: ") and needle in lines[0], lines
    assert not db.exists()


@pytest.mark.parametrize("overrides,needle", [
    (["tracking.uri=sqlite:///relative.db"], "relative path"),  # was refused after creating it
    (["tracking.uri=sqlite:///{results}/mlflow.db", "task.train_limit=0"], "train_limit=0"),
], ids=["relative tracking.uri", "a new folder under results/"])
def test_a_refused_run_leaves_no_store_behind(tmp_path, overrides, needle):
    """Refusals come before anything touches the store's path: no file, no folder, also where
    the refusal is found after the URI was checked (a data slice)."""
    results = REPO / "results" / f"refused-{tmp_path.name}"
    overrides = [o.format(results=results) for o in overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-m", "experiments.train", *TINY_RT, *overrides,
                          f"hydra.run.dir={tmp_path / 'hydra'}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and needle in lines[0], out.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hydra"]  # Hydra's log folder only
    assert not results.exists()


BAD_SWEEP = [
    (["train.epochs=0"], "train.epochs=0", ">= 1"),  # one value for every job
    (["train.lr=1e-3,fast"], "train.lr=fast", "Float"),  # a swept value of a wrong type
    (["variant=none,gal"], "variant/gal", "keras_impl2"),  # an unknown option, options listed
]


@pytest.mark.parametrize("override,needle,allowed", BAD_SWEEP, ids=[c[1] for c in BAD_SWEEP])
def test_bad_override_in_a_sweep_is_refused_once_before_anything_is_written(
        tmp_path, override, needle, allowed):
    db = tmp_path / "mlflow.db"
    out = run_cli("-m", "sweep=smoke", *override, f"tracking.uri=sqlite:///{db}",
                  f"hydra.sweep.dir={tmp_path / 's'}")
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and allowed in lines[0], lines
    assert not db.exists()  # no store, no experiment, no parent run
    assert not (tmp_path / "s").exists()  # no job started


def test_ctrl_c_on_a_single_run_is_one_line_and_the_run_ends_killed(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    err = tmp_path / "stderr.txt"
    proc = start(*TINY_RT, "train.epochs=500", f"tracking.uri={store}", err=err)
    wait_for(proc, err, "epoch 1/500")
    code, text = interrupt(proc), err.read_text()
    assert code == 130 and "Traceback" not in text, text[-3000:]
    said = [line for line in text.splitlines() if "interrupted" in line]
    [run] = runs(store)
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"].startswith("KeyboardInterrupt")
    assert len(said) == 1 and run.info.run_id in said[0], text[-2000:]


def test_make_sweep_runs_the_named_sweeps_in_order_and_stops_at_the_first_that_fails(tmp_path):
    """A study's stages in one command: the second launch of the same sweep trains nothing (its
    runs completed in the first); a refused first sweep leaves the second unstarted."""
    db = tmp_path / "mlflow.db"
    args = f"ARGS=tracking.uri=sqlite:///{db} hydra.sweep.dir={tmp_path / 's'}"

    def make(presets: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "--no-print-directory", "sweep", f"PRESET={presets}", args],
                              cwd=REPO, capture_output=True, text=True, timeout=900)

    out = make("smoke smoke")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("make sweep: sweep=smoke") == 2
    summaries = [x for x in out.stderr.splitlines() if x.startswith("[sweep] summary:")]
    assert [s.split(":", 1)[1].split(",")[:2] for s in summaries] == [
        [" 4 done", " 0 skipped"], [" 0 done", " 4 skipped"]]
    assert len(runs(f"sqlite:///{db}", completed="true")) == 4

    failed = make("no_such_sweep smoke")
    assert failed.returncode != 0
    assert "no_such_sweep" in failed.stderr and "[sweep" not in failed.stderr
    assert "make sweep: sweep=smoke" not in failed.stdout

