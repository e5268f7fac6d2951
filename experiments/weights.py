"""Initial weights of a run: seeded numpy initialisation (identical in both frameworks, so
matched pairs start from the same point by construction) or `train.init_from`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.plan import RunPlan
from experiments.tracking_store import store_exists
from frameworks.base import check_weights, initial_weights
from frameworks.spec import ModelSpec

# Settings that decide the shapes and values of the seeded initial weights.
INIT_KEYS = ("task.name", "task.vocab_size", "task.split_seed", "model.embed_size",
             "model.hidden_size", "model.num_layers", "model.tie_weights", "model.init_scale",
             "model.cell", "model.init")
# Runs logged before model.cell / model.init existed were uniform-initialised LSTMs (MLflow
# params of a missing key read None).
_DEFAULT_PARAMS = {"model.cell": "lstm", "model.init": "uniform"}


def load_initial_weights(plan: RunPlan, spec: ModelSpec, uri: str) -> dict[str, np.ndarray]:
    """`train.init_from` is an .npz file of the shared naming scheme, or the id of an MLflow run
    whose initial weights are reproduced from its logged seed and model settings."""
    source = plan.init_from
    if not source:
        return initial_weights(spec, plan.seed)
    path = Path(source)
    if path.suffix == ".npz" or path.exists():
        if not path.is_file():
            raise ValueError(f"train.init_from={source!r}: no such file")
        with np.load(path) as z:  # files saved before the GRU named the layers lstm.{k}
            weights = {_renamed(k): z[k] for k in z.files}
    else:
        weights = _weights_of_run(source, plan, spec, uri)
    try:
        check_weights(spec, weights)
    except ValueError as e:
        raise ValueError(f"train.init_from={source!r}: {e}") from None
    return weights


def _weights_of_run(run_id: str, plan: RunPlan, spec: ModelSpec, uri: str):
    from mlflow.tracking import MlflowClient

    missing = f"train.init_from={run_id!r} is neither an .npz file nor a run id in {uri}"
    if not store_exists(uri):  # refused before MLflow creates an empty store to look in
        raise ValueError(f"{missing} (no store there)")
    try:
        params = MlflowClient(uri).get_run(run_id).data.params
    except Exception:
        raise ValueError(missing) from None
    if params.get("train.init_from") not in (None, "None"):
        raise ValueError(f"train.init_from={run_id!r}: that run itself started from "
                         f"init_from={params['train.init_from']}; use that source instead")
    mine = plan.params
    for key in INIT_KEYS:
        if str(mine[key]) != params.get(key, _DEFAULT_PARAMS.get(key)):
            raise ValueError(
                f"train.init_from={run_id!r}: mismatched shapes or init, that run has "
                f"{key}={params.get(key)}, this run {key}={mine[key]}"
            )
    return initial_weights(spec, int(params["seed"]))


def _renamed(name: str) -> str:
    return "rnn." + name[len("lstm."):] if name.startswith("lstm.") else name
