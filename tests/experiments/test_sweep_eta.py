"""The sweep's ETA: the jobs still to train times the median wall time of those that trained,
over the jobs run side by side, so that a first job's one-off cost (a compiler build) does not
inflate it and grid skips count as no work. Expected values are worked out by hand."""

from __future__ import annotations

from experiments.sweep import eta_seconds


def _job(status: str, seconds: float | None = None, reason: str = "") -> dict:
    return {"status": status, "run_id": None, "reason": reason, "name": "", "seconds": seconds}


def test_a_slow_first_build_does_not_inflate_the_eta():
    # 20 jobs to train, 2 side by side; two first jobs waited 60 s for a build, three took 10 s,
    # and two grid skips came back: 15 jobs left, 10 s each, two at a time
    results = [_job("FINISHED", 60.0), _job("FINISHED", 60.0), *[_job("FINISHED", 10.0)] * 3,
               *[_job("SKIPPED", reason="model.cell=gru has no state")] * 2]
    assert eta_seconds(results, to_train=20, parallel=2) == 75.0
    # elapsed / done would say 2 x 60 + 10 s for 5 jobs, i.e. 26 s a job: 195 s, 2.6x too long


def test_resumed_jobs_are_done_work_and_give_no_time():
    resumed = [_job("SKIPPED")] * 4  # completed in an earlier launch: no reason, no time
    assert eta_seconds(resumed, to_train=10, parallel=2) is None
    assert eta_seconds([*resumed, _job("FINISHED", 30.0)], to_train=10, parallel=2) == 75.0


def test_a_failed_job_counts_its_time_and_a_finished_sweep_has_none_left():
    results = [_job("FAILED", 4.0), _job("FINISHED", 8.0), _job("FINISHED", 12.0)]
    assert eta_seconds(results, to_train=7, parallel=1) == 32.0  # 4 left x median 8 s
    assert eta_seconds(results, to_train=3, parallel=2) == 0.0
