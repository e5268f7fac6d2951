"""The rules that more than one layer of the suite reads, each stated once: the config schema,
the spec, the sweep's grid, the benchmark and the report import them here.

Why one module: each of those used to keep its own copy (the hash's key lists in the config and
the report, whether a rate has an effect in the spec, the sweep and the report, the one-layer
`torch_builtin` case in the spec and the benchmark, loop names in the config and the
benchmark), and a copy that fell behind split arms or skipped a job silently.

What is here: whether a dropout key has an effect (`inert`, `applies`); the compute loops and
switches of each framework; which config keys the config hash leaves out (`NON_SEMANTIC`) and
which it leaves out at the value that reproduces the runs logged before them (`ADDED_LATER`).
The variant registry (frameworks/variants.py) keeps the facts of each variant and the names
they are written in (rates, knobs, cells, frameworks); the rules below read it.

Cheap and framework-free: it imports only the registry, never Hydra, omegaconf, torch or
tensorflow (tests/frameworks/test_rules.py imports it in a fresh interpreter), so the report and the
sweep's up-front checks pay nothing for it.
"""

from __future__ import annotations

from types import MappingProxyType

from frameworks import variants

# --- whether a dropout key has an effect ------------------------------------------------------

# Why a dropout key has no effect (`inert`): the variant does not use the rate or allow the
# knob; the rate acts on a state the cell does not carry (zoneout_cell in a GRU); the rate acts
# only between stacked layers and the model has one (nn.LSTM's dropout in `torch_builtin`).
VARIANT, STATE, LAYERS = "variant", "state", "layers"


def inert(key: str, variant: str, cell: str | None = None, num_layers: int | None = None) -> str:
    """Why a dropout key (`dropout.<rate>` or `dropout.<knob>`, prefix optional) has no effect
    for `variant` in `cell` with `num_layers` layers: VARIANT, STATE or LAYERS, else "".
    An unknown variant, cell or key, or a cell or layer count not given, is taken to have
    one: the report reads runs logged before a variant or a key existed."""
    leaf = key.rsplit(".", 1)[-1]
    entry = variants.REGISTRY.get(variant)
    if entry is not None and not entry.uses(leaf):
        return VARIANT
    state = variants.RATE_STATE.get(leaf)
    if state and cell in variants.CELLS and state not in variants.CELLS[cell].state:
        return STATE
    if entry is not None and num_layers == 1 and leaf in entry.between_layers:
        return LAYERS
    return ""


def applies(key: str, variant: str, cell: str | None = None,
            num_layers: int | None = None) -> bool:
    """Whether a dropout key has an effect (`inert` says why not)."""
    return not inert(key, variant, cell, num_layers)


# --- how a framework computes (outside the config hash) -------------------------------------

AUTO = "auto"  # the fastest path that computes a call (frameworks/compute.py)
# The values of framework.<fw>_loop: auto, then each path of the backend's list, fastest first
# (frameworks/<backend>/compute.py offers exactly these; tests/frameworks/test_rules.py checks).
LOOPS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "torch": (AUTO, "cpp", "eager"),
    "keras": (AUTO, "cpp", "bptt"),
})
# The framework.* keys only one framework reads, with their defaults: set for the other one
# they would be logged without having had an effect, so they are refused.
SWITCHES: MappingProxyType[str, MappingProxyType[str, object]] = MappingProxyType({
    "torch": MappingProxyType({"torch_loop": AUTO, "torch_compile": False}),
    "keras": MappingProxyType({"keras_loop": AUTO}),
})
COMPILE_LOOPS = (AUTO, "eager")  # torch.compile runs the autograd loop only

# --- the config hash: which keys say what a run computes -------------------------------------

# Settings that change neither the model nor the numbers: left out of the config hash, so that a
# rerun with another store, thread count or compute path still finds its completed twin, and
# never part of a report's arm. A name without a dot is a whole section.
NON_SEMANTIC: tuple[str, ...] = (
    "tracking", "train.threads", "train.device", "published", "study",
    *(f"framework.{key}" for switches in SWITCHES.values() for key in switches),
)
# The rates hashed since the first run; any rate the registry gained later is neutral at 0.
FIRST_RATES = ("embedding", "input", "recurrent", "output", "weight")
# Keys added after runs were logged, with the value that reproduces the behaviour from before
# they existed: left out of the hash at that value, so older completed runs still resume, and
# filled in for an older run's arm in the report.
ADDED_LATER: MappingProxyType[str, object] = MappingProxyType({
    "train.patience": 0, "train.select_on": None, "train.mc_every": 1,
    "model.cell": "lstm", "model.init": "uniform", "dropout.per_step": False,
    **{f"dropout.{r}": 0.0 for r in variants.RATES if r not in FIRST_RATES},
})
