"""A sweep's grid as its callback reads it, composed inside the GlobalHydra a running app has
(the fixture `hydra_app` of tests/conftest.py)."""

from __future__ import annotations

from hydra import compose

from experiments.sweep import sweep_overrides


def grid(preset: str, *cli: str) -> list[str]:
    """What the callback reads: the preset's sweeper params, then the command line."""
    root = compose("config", [f"sweep={preset}", *(c for c in cli if "," not in c)],
                   return_hydra_config=True)
    return [*sweep_overrides(root)[: len(root.hydra.sweeper.params)], f"sweep={preset}", *cli]
