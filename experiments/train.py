"""Entry point: `python -m experiments.train task=rt framework=torch variant=naive` (one run) or
`python -m experiments.train sweep=smoke` (a preset grid; Hydra multirun). Config lives in conf/."""

from __future__ import annotations

import sys
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import experiments.offline  # noqa: F401  (MLflow telemetry off before mlflow is imported)
from experiments.config import register
from frameworks.spec import FRAMEWORK_VARIANTS

register()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    from experiments.run import execute
    from experiments.sweep import write_result

    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    if in_sweep and skip_reason(cfg):
        # grids are products: a pair one framework lacks, or the study leaves out, is skipped
        write_result("SKIPPED", None, skip_reason(cfg))
        return "SKIPPED"
    try:
        result = execute(cfg)
    except Exception as e:
        if not in_sweep:
            raise
        # a failed job must not stop the others: the run is already marked FAILED in MLflow
        traceback.print_exc()
        write_result("FAILED", None, f"{type(e).__name__}: {e}")
        return "FAILED"
    if in_sweep:
        write_result(result.status, result.run_id)
    print(f"{result.status}: run {result.run_id} {result.metrics}", file=sys.stderr)
    return result.status


def skip_reason(cfg: DictConfig) -> str:
    """Why a grid point is not run ("" when it is)."""
    framework, variant = cfg.framework.name.value, cfg.dropout.variant
    if variant not in FRAMEWORK_VARIANTS[framework]:
        return "framework does not implement this variant"
    if cfg.study.arms and f"{framework}/{variant.value}" not in cfg.study.arms:
        return "not an arm of this study (study.arms)"
    return ""


if __name__ == "__main__":
    main()
