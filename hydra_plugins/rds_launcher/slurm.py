"""`hydra/launcher=slurm`: hydra-submitit-launcher's SlurmLauncher with a wait that cannot hang.

submitit learns that a job ended from the job's result file or from `sacct`. A job killed before
it wrote a result (SIGKILL, out of memory, a lost node, `scancel` while it was pending) on a
cluster without accounting (`sacct` fails) leaves it waiting forever, and where `sacct` works it
raises UncompletedJobError, which stops the sweep without its summary. Here a job that has left
the queue (`squeue`) and still has no result `hydra.launcher.gone_after_s` seconds later
(default 120: a shared filesystem may show the result file late), or that submitit gives up on,
is recorded FAILED in its output folder: the sweep's summary lists it and the sweep exits 1.
"""

from __future__ import annotations

import getpass
import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from omegaconf import open_dict

log = logging.getLogger(__name__)
POLL_S = 2.0


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """conf/hydra/launcher/slurm.yaml (`rds_slurm`: config.py's QueueConf)."""

    def __init__(self, gone_after_s: float = 120.0, **params: Any) -> None:
        super().__init__(**params)  # submitit's parameters only
        self.gone_after_s = gone_after_s

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        jobs = self._submit(job_overrides, initial_job_idx)
        outcomes: dict[int, JobReturn] = {}
        left_queue: dict[int, float] = {}  # job -> when it was first seen gone
        while len(outcomes) < len(jobs):
            queued = queued_jobs()
            for i, job in enumerate(jobs):
                if i in outcomes:
                    continue
                if job.done():
                    outcomes[i] = self._collect(job, job_overrides[i], initial_job_idx + i)
                elif queued is not None and job.job_id not in queued:
                    since = left_queue.setdefault(i, time.time())
                    if time.time() - since >= self.gone_after_s:
                        outcomes[i] = self._failed(
                            job_overrides[i], initial_job_idx + i,
                            f"SLURM job {job.job_id} left the queue without a result (killed "
                            "before it could write one: SIGKILL, out of memory, a lost node or "
                            f"scancel while pending); its log: {job.paths.stderr}")
                else:
                    left_queue.pop(i, None)
            if len(outcomes) < len(jobs):
                time.sleep(POLL_S)
        return [outcomes[i] for i in range(len(jobs))]

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
        """The parent's `launch` up to the submission (hydra-submitit-launcher 1.2.0, pinned in
        constraints.txt): the job array submitted, its submitit jobs returned, none waited on."""
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import filter_overrides
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
        from omegaconf import OmegaConf

        assert self.config is not None and len(job_overrides) > 0
        specific = {"max_num_timeout"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR, folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in specific})
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
            if k not in specific | {"submitit_folder"}})
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {self.config.hydra.sweep.dir}")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        params = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                           Singleton.get_state()))
        return executor.map_array(self, *zip(*params, strict=True))

    def _collect(self, job: Any, overrides: Sequence[str], num: int) -> JobReturn:
        """The job's own JobReturn, or FAILED where submitit has no result for it."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        try:
            return job.results()[0]
        except (UncompletedJobError, FailedJobError) as e:
            first = next((line for line in str(e).splitlines() if line.strip()), "")
            return self._failed(overrides, num, f"{type(e).__name__}: {first}; its log: "
                                                f"{job.paths.stderr}")

    def _failed(self, overrides: Sequence[str], num: int, reason: str) -> JobReturn:
        """Record a job that could not record itself, where the sweep's summary reads it."""
        from experiments.sweep import record_result

        assert self.hydra_context is not None and self.config is not None
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config.hydra.job):
            config.hydra.job.num = num
        folder = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
        record_result(folder, " ".join(overrides), "FAILED", None, reason)
        log.error(f"#{num} FAILED: {reason}")
        # the task function's own convention for a failed job: a value, so that Hydra's
        # sweeper (which raises a FAILED JobReturn's error) lets the sweep reach its summary
        return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED,
                         _return_value="FAILED")


def queued_jobs() -> set[str] | None:
    """Ids of this user's jobs in the queue, array tasks as <array>_<task> (one per line with
    --array); None when squeue fails (a controller restart): nothing is concluded then."""
    try:
        out = subprocess.run(["squeue", "--array", "--noheader", "--format=%i",
                              f"--user={getpass.getuser()}"], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return {line.strip() for line in out.stdout.splitlines()} if out.returncode == 0 else None
