"""Entry point: `python -m experiments.train task=rt framework=torch variant=naive` (one run) or
`... -m sweep=smoke` / `+sweep=...` (a Hydra multirun). Config lives in conf/."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from experiments.config import register

register()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    from experiments.run import execute

    result = execute(cfg)
    print(f"{result.status}: run {result.run_id} {result.metrics}", file=sys.stderr)
    return None


if __name__ == "__main__":
    main()
