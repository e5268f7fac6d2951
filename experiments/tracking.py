"""Every MLflow write of the project, and every name it writes: the report depends on both.

Only this module writes to a store (experiments/ and reports/ call the functions below;
tests/experiments/test_tracking_constants.py checks that no other module calls an MLflow write API).
The tag names are the constants below and the metric names are those of experiments/metrics.py;
writers and readers (reports/, experiments/ui.py) import them, so no name is spelled twice.
Importing this module imports neither MLflow nor a framework.

Metrics: `train_loss`, `lr`, `epoch_seconds`, `train_tokens_per_s`, `eval_seconds`,
`valid_<metric>_std` per epoch (step = epoch), `valid_<metric>_mc` every `train.mc_every`
epochs and always at the best epoch, and once at the end (step = best epoch) `best_epoch`,
`epochs_run` (fewer than `train.epochs` after an early stop), `test_<metric>_std|mc`.
Tags: `task`, `framework`, `variant`, `seed`, `config_hash`, `select_on` (the validation metric
that picked the best epoch), `preset` (when one was chosen), `completed` ("true" only after
everything was logged), `failure_reason`, `<package>_version`, `slurm_job_id` (and the array
ids) on a SLURM cluster, `tuned_from` (the keys a study's earlier stage chose). Sweep parents:
`sweep_id`,
`sweep_preset`, `is_sweep_parent`, `primary_comparisons` (the preset's `study.primary`, one
per line), `sweep_key` (the sweep's identity: a hash of its jobs' config hashes), `pid`, `host`;
a parent a killed sweep left RUNNING is closed KILLED with `superseded_by` by the rerun.
Run names: experiments/run_names.py. Which store, its creation and the errors that make it
unusable: experiments/tracking_store.py.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from experiments.tracking_store import REPO, store_errors

# Tags of a training run (`open_training_run`)
TASK, FRAMEWORK, VARIANT, SEED = "task", "framework", "variant", "seed"
CONFIG_HASH = "config_hash"
COMPLETED = "completed"
SELECT_ON = "select_on"
PRESET = "preset"
GIT_COMMIT = "git_commit"
PID, HOST, CPU_MODEL, CPU_COUNT = "pid", "host", "cpu_model", "cpu_count"
VERSION_SUFFIX = "_version"  # `<package>_version`
SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")  # tag: lower case
SWEEP_ID = "sweep_id"  # a sweep job's, and its parent's
FAILURE_REASON = "failure_reason"  # runs and parents that ended FAILED or KILLED
SUPERSEDED_BY = "superseded_by"  # runs and parents a rerun redid
TUNED_FROM = "tuned_from"  # config keys an earlier stage of a study chose (experiments/tuned.py)
# Tags of a sweep parent run (`open_sweep_parent`); also SWEEP_ID, GIT_COMMIT, PID, HOST, ...
IS_SWEEP_PARENT = "is_sweep_parent"
SWEEP_PRESET = "sweep_preset"
SWEEP_JOBS = "sweep_jobs"
SWEEP_OVERRIDES = "sweep_overrides"
SWEEP_KEY = "sweep_key"
PRIMARY = "primary_comparisons"
# the preset's `study.margin` ("metric=margin" per line) and `study.seeds`, on the sweep parent
MARGINS, DECLARED_SEEDS = "equivalence_margins", "declared_seeds"
# artifact of a sweep parent: the config hashes of its jobs, one per line. Why: a job a launch
# skipped because an earlier run of the same config completed (perhaps in another sweep) still
# belongs to the sweep; the report selects a sweep's runs by these hashes.
SWEEP_JOB_HASHES = "sweep_job_hashes.txt"
# a classifier run's test predictions, one line per example: label, then the probability of the
# true class under standard and MC evaluation (what a bootstrap over test examples needs)
TEST_PREDICTIONS = "test_predictions.tsv"
JOB_STATUSES = ("FINISHED", "SKIPPED", "FAILED")  # a sweep job's outcome; counted per parent
# Tags of a benchmark run (`log_bench_run`); also FRAMEWORK, VARIANT, GIT_COMMIT
BENCH_ID, SHAPE, THREADS = "bench_id", "shape", "threads"
# MLflow's own tags
RUN_NAME = "mlflow.runName"
PARENT_RUN_ID = "mlflow.parentRunId"
TRUE, FALSE = "true", "false"
# Params: the flattened config (experiments/config.py `flatten`) and the threads a run used
THREADS_PARAM = "threads"
# which code path computed the run (e.g. the compiled loop or its fallback): not a config key
COMPUTE_PATH_PARAM = "compute_path"
CONFIG_ARTIFACT = "config.yaml"  # the resolved config of a training run
MAX_TAG = 5000  # characters kept of a free-text tag (failure_reason, sweep_overrides, ...)
_BATCH_PARAMS, _BATCH_METRICS = 100, 1000  # MLflow's log_batch limits


def sweep_count_tag(status: str) -> str:
    """The parent's tag counting the jobs that ended `status` (one of JOB_STATUSES)."""
    return f"sweep_{status.lower()}"


def tag_equals(name: str, value: str) -> str:
    """An MLflow search clause: tag `name` equals `value` (quotes escaped)."""
    quoted = value.replace("'", "\\'")
    return f"tags.{name} = '{quoted}'"


def experiment_id(client, name: str, uri: str) -> str:
    """Get or create the experiment; artifacts of a SQLite store live beside the database."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        location = (db.parent / "artifacts" / name).as_uri()
    from experiments.ui import experiment_tags  # the UI's "Machine learning" kind and run table

    try:
        return client.create_experiment(name, artifact_location=location, tags=experiment_tags())
    except Exception:  # a parallel job created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def create_run(client, exp_id: str, tags: Mapping[str, str], run_name: str | None = None) -> str:
    """A RUNNING run with `tags`; returns its id."""
    return client.create_run(exp_id, run_name=run_name, tags=dict(tags)).info.run_id


def open_training_run(client, exp_id: str, uri: str, *, task: str, framework: str, variant: str,
                      seed: int, config_hash: str, select_on: str, run_name: str,
                      preset: str | None = None, parent: str | None = None,
                      sweep_id: str | None = None,
                      slurm: Mapping[str, str] | None = None,
                      tuned_from: str = "") -> str:
    """Create a training run with every tag the report reads (`completed` false until
    `complete_run`) and mark the earlier unfinished runs of its config superseded by it.
    `slurm`: a SLURM job's ids (hydra/launcher=slurm), lower-case names of SLURM_VARIABLES;
    slurm_job_id is what `scancel`/`sacct` take. `tuned_from`: the keys whose values a study's
    earlier stage chose (`experiments.tuned.tag`), if any."""
    tags = {
        TASK: task, FRAMEWORK: framework, VARIANT: variant, SEED: str(seed),
        CONFIG_HASH: config_hash, COMPLETED: FALSE, SELECT_ON: select_on,
        **({PRESET: preset} if preset else {}),
        GIT_COMMIT: git_commit(), PID: str(os.getpid()), **machine_tags(),
        RUN_NAME: run_name,
        **{f"{k}{VERSION_SUFFIX}": v for k, v in package_versions(framework).items()},
        **(slurm or {}),
        **({TUNED_FROM: tuned_from} if tuned_from else {}),
    }
    if parent:
        tags[PARENT_RUN_ID] = parent
    if sweep_id:
        tags[SWEEP_ID] = sweep_id
    with store_errors(uri):
        run_id = create_run(client, exp_id, tags)
    supersede_unfinished(client, exp_id, config_hash, run_id)
    return run_id


def log_config(client, run_id: str, params: Mapping[str, object], threads: int,
               config_yaml: str) -> None:
    """A training run's flattened config and its thread count as params, and the resolved
    config as the artifact config.yaml."""
    log_params(client, run_id, {**params, THREADS_PARAM: threads})
    log_text(client, run_id, CONFIG_ARTIFACT, config_yaml)


def log_params(client, run_id: str, params: Mapping[str, object]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)) for k, v in sorted(params.items())]
    for i in range(0, len(items), _BATCH_PARAMS):
        client.log_batch(run_id, params=items[i : i + _BATCH_PARAMS])


def log_metrics(client, run_id: str, values: Mapping[str, float], step: int) -> None:
    """`values` at one step (an epoch; the best epoch for the final metrics)."""
    log_points(client, run_id, ((k, v, step) for k, v in values.items()))


def log_points(client, run_id: str, points: Iterable[tuple[str, float, int]]) -> None:
    """(key, value, step) metric points, at any steps."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v, step in points]
    for i in range(0, len(items), _BATCH_METRICS):
        client.log_batch(run_id, metrics=items[i : i + _BATCH_METRICS])


def log_text(client, run_id: str, name: str, text: str) -> None:
    """`text` as the artifact `name` at the root of the run's artifacts."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        client.log_artifact(run_id, str(path))


def log_artifacts(client, run_id: str, paths: Iterable[Path], folder: str | None = None) -> None:
    """Files as artifacts under `folder` (the root when None); a path logged again
    overwrites."""
    for path in paths:
        client.log_artifact(run_id, str(path), folder)


def end_run(client, run_id: str, status: str, reason: str | None = None) -> None:
    """Close a run FINISHED, FAILED or KILLED; `reason` becomes its `failure_reason`."""
    if reason is not None:
        client.set_tag(run_id, FAILURE_REASON, reason[:MAX_TAG])
    client.set_terminated(run_id, status)


def complete_run(client, run_id: str) -> None:
    """Everything was logged: only now is the run tagged `completed` and closed FINISHED."""
    client.set_tag(run_id, COMPLETED, TRUE)
    client.set_terminated(run_id, "FINISHED")


def open_sweep_parent(client, exp_id: str, *, sweep_id: str, preset: str, jobs: int,
                      overrides: Iterable[str], key: str, primary: Iterable[str],
                      job_hashes: Iterable[str] = (), margins: Mapping[str, str] | None = None,
                      declared_seeds: int = 0) -> str:
    """The parent run of one experiment's jobs of a sweep; returns its id."""
    run_id = create_run(client, exp_id, run_name=f"sweep {preset} {sweep_id}", tags={
        SWEEP_ID: sweep_id, SWEEP_PRESET: preset, IS_SWEEP_PARENT: TRUE,
        SWEEP_JOBS: str(jobs), GIT_COMMIT: git_commit(),
        SWEEP_OVERRIDES: " ".join(overrides)[:MAX_TAG],
        SWEEP_KEY: key, PID: str(os.getpid()), **machine_tags(),
        PRIMARY: "\n".join(primary)[:MAX_TAG],
        MARGINS: "\n".join(f"{k}={v}" for k, v in (margins or {}).items()),
        DECLARED_SEEDS: str(declared_seeds),
    })
    log_text(client, run_id, SWEEP_JOB_HASHES, "".join(f"{h}\n" for h in job_hashes))
    return run_id


def close_sweep_parent(client, run_id: str, counts: Mapping[str, int], status: str,
                       reason: str | None = None) -> None:
    """Tag the parent with its jobs' outcomes ({JOB_STATUSES item: count}) and close it."""
    for job_status, count in counts.items():
        client.set_tag(run_id, sweep_count_tag(job_status), str(count))
    end_run(client, run_id, status, reason)


def log_bench_run(client, exp_id: str, *, bench_id: str, framework: str, variant: str,
                  shape: str, threads: int, metrics: Mapping[str, float]) -> str:
    """One measured (framework, variant, shape) of `make bench`, closed FINISHED."""
    run_id = create_run(client, exp_id, tags={
        RUN_NAME: f"{framework}/{variant}/{shape}", BENCH_ID: bench_id, FRAMEWORK: framework,
        VARIANT: variant, SHAPE: shape, THREADS: str(threads), GIT_COMMIT: git_commit()})
    log_metrics(client, run_id, metrics, 0)
    end_run(client, run_id, "FINISHED")
    return run_id


def set_experiment_tags(client, exp_id: str, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        client.set_experiment_tag(exp_id, key, value)


def find_completed(client, exp_id: str, config_hash: str):
    runs = client.search_runs(
        [exp_id],
        filter_string=f"{tag_equals(CONFIG_HASH, config_hash)} and {tag_equals(COMPLETED, TRUE)}",
        max_results=1,
    )
    return runs[0] if runs else None


def supersede_unfinished(client, exp_id: str, config_hash: str, new_run_id: str) -> None:
    """Mark earlier runs of the same config that never completed (killed, crashed) as KILLED
    and point them to the run that redoes them, so they never look like results."""
    runs = client.search_runs(
        [exp_id],
        filter_string=f"{tag_equals(CONFIG_HASH, config_hash)} and tags.{COMPLETED} != '{TRUE}'",
    )
    for run in runs:
        if run.info.run_id == new_run_id:
            continue
        client.set_tag(run.info.run_id, SUPERSEDED_BY, new_run_id)
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")


def supersede_stale_parents(client, exp_id: str, sweep_key: str, new_run_id: str) -> list[str]:
    """Close the parents of earlier runs of the same sweep (same `sweep_key`) that are still
    RUNNING because their launching process was killed (kill -9, a lost node): KILLED and
    pointed to the new parent, as `supersede_unfinished` does for runs. A parent whose launching
    process still runs on this machine (the same grid launched twice) is left alone."""
    runs = client.search_runs([exp_id], filter_string=f"{tag_equals(SWEEP_KEY, sweep_key)} and "
                              "attributes.status = 'RUNNING'")
    closed = []
    for run in runs:
        if run.info.run_id == new_run_id or _launcher_alive(run):
            continue
        client.set_tag(run.info.run_id, SUPERSEDED_BY, new_run_id)
        end_run(client, run.info.run_id, "KILLED",
                "never closed: its sweep was killed; a rerun of the sweep superseded it")
        closed.append(run.info.run_id)
    return closed


def _launcher_alive(run) -> bool:
    """Whether the process that opened this parent still runs here (not a reused pid: a live
    launcher was started before its parent run)."""
    import psutil

    tags = run.data.tags
    if tags.get(HOST) != platform.node() or not tags.get(PID, "").isdigit():
        return False
    try:
        proc = psutil.Process(int(tags[PID]))
        return proc.status() != psutil.STATUS_ZOMBIE and \
            proc.create_time() * 1000 <= run.info.start_time
    except psutil.Error:
        return False


def package_versions(framework: str) -> dict[str, str]:
    names = ["mlflow", "numpy", "hydra-core"]
    names += ["torch"] if framework == "torch" else ["tensorflow-cpu", "tensorflow", "keras"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def machine_tags() -> dict[str, str]:
    """Where a run ran, so the report can tell timings from different machines apart."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {HOST: platform.node(), CPU_MODEL: model, CPU_COUNT: str(os.cpu_count())}


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
