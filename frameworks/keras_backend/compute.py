"""How the Keras backend computes a recurrent layer's loop: its paths, fastest first, each with
what it covers (the choice itself is frameworks/compute.py's, one place for both backends).

- `cpp`: the whole layer (LSTM and GRU; no mask, the Gal family's tied or per-gate masks; every
  hook that declares its core slots: candidate dropout, zoneout) as one compiled TensorFlow op
  each way (native_loop.py), built on first use; CPU, float32;
- `tf.function` (loop `bptt`): cells.py's loop inside the runner's tf.function, differentiated
  by TensorFlow (back-propagation through the `tf.while_loop`); it computes every call.

`framework.keras_loop=auto` (the default) takes the first that covers a call. A layer is traced
once per tf.function, so the path is chosen and recorded at tracing, per runner.
"""

from __future__ import annotations

from frameworks.compute import Path, PathRecord, loops, path
from frameworks.keras_backend.hooks import CORE_KINDS

PATHS: tuple[Path, ...] = (
    path("cpp", "cpp", cells=("lstm", "gru"), devices=("cpu",), dtypes=("float32",),
         hooks=CORE_KINDS),
    path("tf.function", "bptt"),
)
CPP = PATHS[0]
LOOPS = loops(PATHS)  # auto, cpp, bptt
SETTING = "framework.keras_loop"


def record() -> PathRecord:
    """A runner's record of what computed its layers ("tf.function" before any was traced)."""
    return PathRecord(tuple(p.name for p in PATHS), empty="tf.function")
