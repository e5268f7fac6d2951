"""Entry point: `python -m experiments.train task=rt framework=torch variant=naive` (one run) or
`python -m experiments.train sweep=smoke` (a preset grid; Hydra multirun). Config lives in conf/.

Bad input (a wrong type, an unknown key or option, a value `prepare` refuses) is one line on
stderr and exit code 2; Ctrl-C is one line and exit code 130 with every open run marked KILLED;
a traceback is kept for what is a bug."""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig

import experiments.offline  # noqa: F401  (MLflow telemetry off before mlflow is imported)
from experiments.config import register
from experiments.refusal import Refused, one_line, refuse
from experiments.sweep_jobs import skip_reason
from experiments.tasks import DataError
from experiments.tracking_store import TrackingError, default_uri, no_space
from frameworks.spec import SpecError

register()

# Bad input wherever it is found (the device and the store are checked after `prepare`).
REFUSALS = (Refused, SpecError, DataError, TrackingError)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    from experiments.run import execute
    from experiments.sweep import write_result

    started = time.monotonic()
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    if in_sweep and (reason := skip_reason(cfg)):
        write_result("SKIPPED", None, reason)
        return "SKIPPED"
    try:
        result = execute(cfg, prepared(cfg))
    except REFUSALS as e:
        if not in_sweep:
            refuse(e)
        # the sweep checked every job up front: what is left is data-dependent (slices, files)
        print(f"refused: {one_line(e)}", file=sys.stderr)
        write_result("FAILED", None, one_line(e))
        return "FAILED"
    except Exception as e:
        full = no_space(e, cfg.tracking.uri or default_uri())  # one line, no traceback
        if not in_sweep:
            if full:
                print(full, file=sys.stderr)
                raise SystemExit(1) from None
            raise
        # a failed job must not stop the others: the run is already marked FAILED in MLflow
        if full:
            print(full, file=sys.stderr)
        else:
            traceback.print_exc()
        write_result("FAILED", None, full or f"{type(e).__name__}: {e}",
                     time.monotonic() - started)
        return "FAILED"
    except SystemExit as e:
        if not in_sweep or e.code != 128 + signal.SIGTERM:
            raise
        # SIGTERM (run.py marked the run KILLED): scancel or a SLURM time limit. Returning lets
        # submitit write the job's result, so the launcher and the summary see it (else it waits)
        notes = "; ".join(getattr(e, "__notes__", []))
        write_result("FAILED", None, f"killed by SIGTERM (scancel, a time limit or kill): {notes}")
        return "FAILED"
    if in_sweep:
        write_result(result.status, result.run_id, seconds=time.monotonic() - started)
    print(f"{result.status}: run {result.run_id} {result.metrics}", file=sys.stderr)
    return result.status


def prepared(cfg: DictConfig):
    """`run.prepare`, whose every check raises a ValueError naming the key: bad input, told
    apart from a ValueError in training (a bug, which keeps its traceback)."""
    from experiments.run import prepare

    try:
        return prepare(cfg)
    except ValueError as e:
        raise Refused(one_line(e)) from e


def cli() -> None:
    """`python -m experiments.train`: Hydra's composition errors and Ctrl-C in one line."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises its errors instead of printing them
    # joblib answers Ctrl-C by SIGKILLing its workers; multiprocessing's resource tracker (a
    # child started with these -W options) then frees their semaphores and reports them as
    # "leaked" in two lines after ours. Nothing is lost: the tracker exists to free them.
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    try:
        main()
    except KeyboardInterrupt as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the close
        notes = getattr(e, "__notes__", [])  # execute() names the run it marked KILLED
        print(close_sweep(e) or (f"interrupted (Ctrl-C): {notes[-1]}" if notes else
                                 "interrupted (Ctrl-C) before a run was logged"),
              file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except HydraException as e:  # a wrong type, an unknown key or option, a bad override
        if line := close_sweep(e):
            print(line, file=sys.stderr)
        refuse(e)
    except Exception as e:  # a bug, or a launcher that crashed: the traceback follows
        if line := close_sweep(e):
            print(line, file=sys.stderr)
        raise


def close_sweep(error: BaseException) -> str | None:
    """Close the runs a sweep launched here left open (None: no sweep was launched)."""
    from experiments.sweep import close_launch

    try:
        return close_launch(error)
    except Exception as e:  # noqa: BLE001 - the store may be what failed; say so, briefly
        return f"[sweep] stopped; its open runs could not be closed: {one_line(e)}"


if __name__ == "__main__":
    cli()
