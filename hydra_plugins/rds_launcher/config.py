"""The `rds_slurm` launcher config: submitit_slurm's keys, this package's SlurmLauncher and its
one key, typed, so that a bad value is refused when the config is composed, before anything
runs. (No `from __future__ import annotations` here: Hydra's plugin scan runs this module
without registering it in sys.modules, where dataclasses look string annotations up.)"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class QueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.rds_launcher.slurm.SlurmLauncher"
    gone_after_s: float = 120.0  # a job out of the queue this long without a result: FAILED


ConfigStore.instance().store(group="hydra/launcher", name="rds_slurm", node=QueueConf,
                             provider="rds_launcher")
