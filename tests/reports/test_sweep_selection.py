"""`--sweep` selects a whole sweep across its launches, on a small real store.

A sweep interrupted and launched again gets a new parent run (and sweep_id) per launch; its
completed jobs keep the sweep_id of the parent that ran them, and the parents share the tag
sweep_key (a parent a rerun closed also has superseded_by; one logged before sweep_key existed
has only that). The store below, written through MlflowClient as experiments/sweep.py and
experiments/run.py log:

- sweep "grid" launched three times (jobs: seeds 0-3 of torch/naive):
  p1 (sweep id g-1, no sweep_key: an older launch) ran seed 0, was left RUNNING and closed by
  the second launch (KILLED, superseded_by p2); p2 (g-2, key K) ran seed 1, was interrupted
  with Ctrl-C while seed 2 ran (parent and run closed KILLED, no superseded_by: only RUNNING
  parents are superseded); p3 (g-3, key K) ran seeds 2 and 3 and skipped 0 and 1;
- another sweep (o-1, key L) of torch/none, and a lone sweep (u-1, no key, no link).

Expected values come from MlflowClient searches, never from the report's code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from experiments import config as C
from experiments import tracking as T
from experiments import tracking_store
from reports import build as cli
from reports.analysis import health
from reports.store import load, sweeps
from tests.conftest import compose_cfg
from tests.support import part3_store

# one xdist worker runs this module, so its module-scoped relaunched store is made once
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sweep_selection")]
KEY, OTHER_KEY = "k" * 16, "l" * 16


def _parent(client: MlflowClient, exp: str, sweep_id: str, key: str | None, jobs: int) -> str:
    tags = {T.SWEEP_ID: sweep_id, T.SWEEP_PRESET: "grid", T.IS_SWEEP_PARENT: T.TRUE,
            T.SWEEP_JOBS: str(jobs)}
    if key:
        tags[T.SWEEP_KEY] = key
    return client.create_run(exp, run_name=f"sweep grid {sweep_id}", tags=tags).info.run_id


def _close(client: MlflowClient, parent: str, status: str, finished: int | None = None,
           skipped: int = 0) -> None:
    if finished is not None:
        T.close_sweep_parent(client, parent, {"FINISHED": finished, "SKIPPED": skipped,
                                              "FAILED": 0}, status)
    else:
        client.set_terminated(parent, status)


def make(root: Path) -> dict:
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking_store.ensure_store(uri)
    client = MlflowClient(uri)
    exp = T.experiment_id(client, "imdb", uri)
    rng = np.random.default_rng(5)
    params = {v: C.flatten(compose_cfg([*part3_store.GRID_SETTING, f"variant={v}"]))
              for v in ("naive", "none")}

    def run(parent: str, sweep_id: str, variant: str, seed: int) -> str:
        tags = {"task": "imdb", "framework": "torch", "variant": variant}
        return part3_store._run(client, exp, parent, sweep_id, params[variant], tags,
                                0.84 + rng.normal(0, 0.003), seed, rng)

    p1 = _parent(client, exp, "g-1", None, 4)
    run(p1, "g-1", "naive", 0)
    p2 = _parent(client, exp, "g-2", KEY, 4)
    client.set_tag(p1, T.SUPERSEDED_BY, p2)  # the second launch closed the stale parent
    _close(client, p1, "KILLED")
    run(p2, "g-2", "naive", 1)
    killed = client.create_run(exp, tags={
        "task": "imdb", "framework": "torch", "variant": "naive", "seed": "2",
        T.COMPLETED: T.FALSE, T.SWEEP_ID: "g-2", T.PARENT_RUN_ID: p2}).info.run_id
    T.end_run(client, killed, "KILLED", "KeyboardInterrupt: the sweep was interrupted")
    _close(client, p2, "KILLED", finished=1, skipped=0)  # Ctrl-C after 1 of 4 jobs
    p3 = _parent(client, exp, "g-3", KEY, 4)
    run(p3, "g-3", "naive", 2)
    run(p3, "g-3", "naive", 3)
    _close(client, p3, "FINISHED", finished=2, skipped=2)
    other = _parent(client, exp, "o-1", OTHER_KEY, 2)
    for seed in (0, 1):
        run(other, "o-1", "none", seed)
    _close(client, other, "FINISHED", finished=2)
    lone = _parent(client, exp, "u-1", None, 2)
    for seed in (0, 1):
        run(lone, "u-1", "none", seed)
    _close(client, lone, "FINISHED", finished=2)
    return {"uri": uri, "client": client, "exp": exp, "killed": killed,
            "parents": {"p1": p1, "p2": p2, "p3": p3, "other": other, "lone": lone}}


@pytest.fixture(scope="module")
def relaunched(tmp_path_factory):
    return make(tmp_path_factory.mktemp("sweeps"))


def _ids(store: dict, *sweep_ids: str) -> set[str]:
    """Run ids of the training runs logged with these sweep ids, straight from MLflow."""
    runs = store["client"].search_runs([store["exp"]], "", max_results=1000)
    return {r.info.run_id for r in runs if r.data.tags.get(T.SWEEP_ID) in sweep_ids
            and r.data.tags.get(T.IS_SWEEP_PARENT) != T.TRUE}


@pytest.mark.parametrize("selector", ["g-3", "g-1", "g-2", "p1", "p2", "p3"])
def test_any_launch_selects_the_runs_and_parents_of_every_launch(relaunched, selector):
    x = relaunched["parents"].get(selector, selector)
    data = load.load(relaunched["uri"], load.Filters(sweep=x))
    assert set(data.runs["run_id"]) == _ids(relaunched, "g-1", "g-2", "g-3")
    assert set(data.parents["run_id"]) == {relaunched["parents"][p] for p in ("p1", "p2", "p3")}
    assert data.selected == [relaunched["parents"][p] for p in ("p1", "p2", "p3")]  # oldest 1st


def test_a_sweep_without_key_or_link_is_selected_alone(relaunched):
    data = load.load(relaunched["uri"], load.Filters(sweep="u-1"))
    assert set(data.runs["run_id"]) == _ids(relaunched, "u-1")
    assert data.selected == [relaunched["parents"]["lone"]]
    other = load.load(relaunched["uri"], load.Filters(sweep=relaunched["parents"]["other"]))
    assert set(other.runs["run_id"]) == _ids(relaunched, "o-1")


def test_groups_join_parents_by_key_and_by_superseded_by(relaunched):
    data = load.load(relaunched["uri"])
    groups = sweeps.sweep_groups(data.parents)
    p = relaunched["parents"]
    assert groups[p["p1"]] == groups[p["p2"]] == groups[p["p3"]] == KEY
    assert groups[p["other"]] == OTHER_KEY and groups[p["lone"]] == p["lone"]


def test_the_earlier_launches_are_superseded_not_missing_jobs(relaunched):
    p = relaunched["parents"]
    data = load.load(relaunched["uri"])
    s = health.check(data).sweeps.set_index("parent_run")
    assert s.loc[p["p1"], "verdict"] == f"superseded by the rerun's parent {p['p2'][:8]}"
    # closed by Ctrl-C, not by the rerun: no superseded_by tag, yet not incomplete
    assert s.loc[p["p2"], "verdict"].startswith(f"superseded by the rerun's parent {p['p3'][:8]}")
    assert "1 of 4 jobs reported back" in s.loc[p["p2"], "verdict"]
    assert s.loc[p["p3"], "verdict"] == "complete"
    assert (s.loc[[p["other"], p["lone"]], "verdict"] == "complete").all()
    assert set(s.loc[[p["p1"], p["p2"], p["p3"]], "sweep"]) == {KEY}
    assert not s["verdict"].str.startswith("incomplete").any()


def test_report_names_every_parent_it_covers_and_no_incomplete_sweep(relaunched, tmp_path):
    p = relaunched["parents"]
    rc, built = cli.run(cli.parser().parse_args([
        "--tracking-uri", relaunched["uri"], "--sweep", "g-3", "--out", str(tmp_path),
        "--no-log-artifacts"]))
    assert rc == 0
    md = (tmp_path / "report.md").read_text()
    # the launches are provenance: after the answers, in section 9
    assert "covers 3 parent run(s)" not in md[:md.index("## 1. Summary")]
    intro = md[md.index("## 9. Provenance"):md.index("## Appendix")]
    assert "covers 3 parent run(s) from 3 launch(es)" in intro and f"`{KEY}`" in intro
    lines = [x for x in intro.splitlines() if x.startswith("- sweep id")]
    assert [(f"`g-{i}`" in x, f"`{p[f'p{i}'][:8]}`" in x) for i, x in enumerate(lines, 1)] \
        == [(True, True)] * 3
    assert "superseded by" in lines[0] and "o-1" not in md and "u-1" not in md
    assert "sweep(s) incomplete" not in md
    health_ = md[md.index("## 8. Run health"):md.index("## 9.")]
    assert "was launched 3 times" in health_ and "4 completed run(s) across them" in health_
    # the killed run of the interrupted launch is listed, the rest is used
    assert built.summaries["imdb"]["n"].tolist() == [4]
    assert relaunched["killed"][:8] in health_


def test_one_launch_over_two_experiments_is_not_a_relaunch_and_complete_stays_complete():
    """A sweep logs one parent per experiment (same sweep id and key): not two launches. A
    complete launch relaunched anyway (every job skipped) is still complete."""
    import pandas as pd

    from reports.sections.health import relaunches

    def parent(run_id, sweep_id, experiment, start, status="FINISHED", finished=2):
        return {"run_id": run_id, "sweep_id": sweep_id, "experiment": experiment,
                "status": status, "start_time": start,
                "tags": {T.SWEEP_KEY: KEY, T.SWEEP_JOBS: "2", "sweep_finished": str(finished),
                         "sweep_skipped": str(2 - finished), "sweep_failed": "0"}}

    runs = pd.DataFrame(columns=["parent_run_id", "sweep_id", "experiment", "completed",
                                 "status"])
    one = pd.DataFrame([parent("a" * 32, "s-1", "ptb", 1), parent("b" * 32, "s-1", "imdb", 1)])
    s = health.sweep_health(load.StoreData("sqlite:///x", {}, runs, pd.DataFrame(), one))
    assert list(s["verdict"]) == ["complete", "complete"]
    assert not [b for b in relaunches(s) if b.startswith("- ")]
    again = pd.concat([one, pd.DataFrame([parent("c" * 32, "s-2", "ptb", 2, finished=0)])])
    s = health.sweep_health(load.StoreData("sqlite:///x", {}, runs, pd.DataFrame(), again))
    assert list(s["verdict"]) == ["complete"] * 3 and set(s["sweep"]) == {KEY}
    [bullets] = relaunches(s)
    assert "launched 2 times" in bullets.splitlines()[0]
    killed = pd.concat([pd.DataFrame([parent("d" * 32, "s-0", "ptb", 0, "KILLED", 1)]), again])
    s = health.sweep_health(load.StoreData("sqlite:///x", {}, runs, pd.DataFrame(), killed))
    verdict = s.set_index("parent_run")["verdict"]
    assert verdict["d" * 32].startswith("superseded by the rerun's parent aaaaaaaa (here: ")
    assert verdict["c" * 32] == "complete"


def test_a_sweep_covers_its_jobs_by_config_hash_whichever_launch_ran_them(tmp_path):
    """A changed grid is a new sweep (new sweep_key); a job it skipped because that config had
    completed in another sweep is still its run, and an older config it no longer runs is not."""
    store = make(tmp_path)
    client, exp = store["client"], store["exp"]
    wanted = ["grid-naive-2", "grid-naive-3", "grid-naive-4"]  # two done by g-3, one new
    new = T.open_sweep_parent(client, exp, sweep_id="n-1", preset="grid", jobs=3, overrides=[],
                              key="n" * 16, primary=[], job_hashes=wanted)
    params = C.flatten(compose_cfg([*part3_store.GRID_SETTING, "variant=naive"]))
    part3_store._run(client, exp, new, "n-1", params,
                     {"task": "imdb", "framework": "torch", "variant": "naive"}, 0.84, 4,
                     np.random.default_rng(0))
    _close(client, new, "FINISHED", finished=1, skipped=2)
    expected = {r.info.run_id for r in client.search_runs([exp], "", max_results=1000)
                if r.data.tags.get(T.CONFIG_HASH) in wanted}
    assert len(expected) == 3
    data = load.load(store["uri"], load.Filters(sweep="n-1"))
    assert set(data.runs["run_id"]) == expected
    assert data.selected == [new]
    rc, _ = cli.run(cli.parser().parse_args([
        "--tracking-uri", store["uri"], "--sweep", "n-1", "--out", str(tmp_path / "report"),
        "--no-log-artifacts"]))
    md = (tmp_path / "report" / "report.md").read_text()
    intro = md[md.index("## 9. Provenance"):md.index("## Appendix")]
    assert rc == 0
    assert (f"2 of its 3 runs were logged by other launches that ran the same configurations"
            f" (this sweep's jobs, resumed by config hash): parent run(s) "
            f"`{store['parents']['p3'][:8]}`.") in intro
