"""hydra/launcher=slurm is submitit's SlurmLauncher with a wait that cannot hang
(hydra_plugins/rds_launcher; tests/e2e/test_cluster.py runs it on a real cluster). Its one key of
its own, `gone_after_s`, is typed: a bad value is refused in one line before anything runs."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_the_slurm_launcher_is_the_one_that_cannot_hang():
    out = _train("sweep=smoke", "hydra/launcher=slurm", "--cfg", "hydra")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "_target_: hydra_plugins.rds_launcher.slurm.SlurmLauncher" in out.stdout
    assert "gone_after_s: 120" in out.stdout


def test_a_bad_gone_after_s_is_refused_in_one_line_before_anything_runs(tmp_path):
    out = _train("--multirun", "sweep=smoke", "hydra/launcher=slurm",
                 "hydra.launcher.gone_after_s=soon", f"tracking.uri=sqlite:///{tmp_path}/m.db",
                 f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert out.returncode == 2, out.stderr[-2000:]
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("refused:") and "hydra.launcher.gone_after_s=soon" in line, line
    assert "Float" in line, line  # what is allowed
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no sweep folder
