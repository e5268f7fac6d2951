"""Every job of a sweep, composed and checked in the launching process before anything is
written: a bad value is refused once, up front, instead of failing every job after a parent run
was opened. The composed jobs also give the sweep its identity (`sweep_key`) and the
experiments that get a parent run.

Hydra composes a config in ~0.1 s of CPU, too slow for a 90-job grid, so each distinct choice of
config groups (`variant=`, `framework=`, `preset=`) is composed once and the value overrides
(`seed=`, `train.lr=`) are applied to a copy with Hydra's own override code: the same two steps,
in the same order, that Hydra's composition takes (tests/experiments/test_sweep_jobs.py checks the
result equals a full composition).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

from hydra import compose
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from experiments import config as C
from experiments import plan as P
from experiments.refusal import Refused, one_line
from frameworks import rules, variants
from frameworks.spec import FRAMEWORK_VARIANTS, TaskKind


@dataclass(frozen=True)
class Job:
    overrides: tuple[str, ...]
    cfg: DictConfig  # as the job's task function will see it (no `hydra` node)
    skip: str  # why the grid skips it; "" when it runs


def skip_reason(cfg: DictConfig) -> str:
    """Why a grid point is not run ("" when it is): grids are products, so a pair one framework
    lacks, a variant (or a rate) a cell does not have, or a pair the study leaves out
    (`study.arms`), is skipped rather than refused."""
    framework, variant = cfg.framework.name.value, cfg.dropout.variant
    if variant not in FRAMEWORK_VARIANTS[framework]:
        return "framework does not implement this variant"
    cell = variants.cell(cfg.model.cell.value)
    if cell.name not in variants.entry(variant).cells:
        return f"variant not defined for model.cell={cell.name}"
    lacking = [r for r in variants.RATES if cfg.dropout[r] > 0
               and rules.inert(r, variant.value, cell.name) == rules.STATE]
    if lacking:
        return f"model.cell={cell.name} has no state for dropout.{lacking[0]}"
    if cfg.study.arms and f"{framework}/{variant.value}" not in cfg.study.arms:
        return "not an arm of this study (study.arms)"
    return ""


def expand(overrides: list[str]) -> list[list[str]]:
    """Each job's overrides, formed as Hydra's basic sweeper forms them (a later key wins)."""
    # glob(...) over a config group lists the group's options: it needs the app's config loader
    loader = GlobalHydra.instance().hydra.config_loader if GlobalHydra.instance().is_initialized() \
        else None
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(overrides)
    return BasicSweeper.split_arguments(parsed, None)[0]


def compose_jobs(config_name: str, overrides: list[str]) -> list[Job]:
    """Compose every job (needs the running app's GlobalHydra, or `initialize_config_dir`)."""
    repo = GlobalHydra.instance().hydra.config_loader.repository
    parser = OverridesParser.create()
    bases: dict[tuple[str, ...], DictConfig] = {}
    jobs, lines = [], expand(overrides)
    for n, job in enumerate(lines, 1):
        try:
            parsed = parser.parse_overrides(job)
            # Hydra's own split (defaults_list.Overrides): a group choice unless a dict or no group
            group = [repo.group_exists(o.key_or_group) and not isinstance(o.value(), dict)
                     for o in parsed]
            choices = tuple(o.input_line for o, g in zip(parsed, group, strict=True) if g)
            if choices not in bases:
                bases[choices] = compose(config_name, list(choices))
            cfg = copy.deepcopy(bases[choices])
            values = [o for o, g in zip(parsed, group, strict=True)
                      if not g and not o.is_hydra_override()]  # hydra.*: not in a job's cfg
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        except (HydraException, OmegaConfBaseException, ValueError) as e:
            raise Refused(_in_job(e, n, len(lines), job)) from e
        jobs.append(Job(tuple(job), cfg, skip_reason(cfg)))
    return jobs


def check(jobs: list[Job]) -> None:
    """The checks `run.prepare` makes before loading data, for every job the grid runs: each
    job's plan made as the job will make it (`plan.make`), from its own overrides and none of
    this process's environment, and its model spec."""
    for n, job in enumerate(jobs, 1):
        if job.skip:
            continue
        try:
            plan = P.make(job.cfg, P.Invocation(overrides=job.overrides), environ={})
            lm = plan.data.kind is TaskKind.LANGUAGE_MODEL
            vocab = plan.data.vocab_size or 10000  # the data's sizes are not loaded here
            plan.spec(vocab, vocab if lm else 2)
        except ValueError as e:
            raise Refused(_in_job(e, n, len(jobs), list(job.overrides))) from e


def checked(config_name: str, overrides: list[str]) -> list[Job]:
    jobs = compose_jobs(config_name, overrides)
    check(jobs)
    return jobs


def job_hashes(jobs: list[Job]) -> list[str]:
    """The config hashes of the jobs the sweep runs (not those the grid skips), sorted."""
    return sorted(C.config_hash(j.cfg) for j in jobs if not j.skip)


def sweep_key(jobs: list[Job]) -> str:
    """The sweep's identity: the config hashes of the jobs it runs, so the same grid is the same
    sweep whatever the order or spelling of its overrides, its store or its launcher."""
    return hashlib.sha256("\n".join(job_hashes(jobs)).encode()).hexdigest()[:16]


def experiments(jobs: list[Job]) -> list[str]:
    """The MLflow experiments the jobs that run log to (a preset may set the task)."""
    return sorted({P.experiment(j.cfg) for j in jobs if not j.skip})


def _in_job(error: BaseException, n: int, total: int, job: list[str]) -> str:
    return f"{one_line(error)} (job {n} of {total}: {' '.join(job)}); nothing was run"
