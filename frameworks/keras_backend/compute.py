"""How the Keras backend computes, as opposed to what: set once per run from the config key
framework.keras_loop (logged as a param), left out of the config hash because it changes the
numbers by float rounding only (tests/test_native_loop.py).

- loop `bptt` (default): the LSTM loops of recurrence.py (the Gal family with gal_bptt.py's
  hand-written backward) inside the runner's tf.function;
- `cpp`: the same LSTM loops as one compiled TensorFlow op each way (native_loop.py), built on
  first use; anything it does not cover (the GRU, a per-step hook, float64, a GPU), or a machine
  where the build fails (one warning), runs what `bptt` runs.
"""

from __future__ import annotations

LOOPS = ("bptt", "cpp")
PATHS = ("cpp", "tf.function")  # what computed the recurrent layers, in report order

_current = {"loop": "bptt"}
# what computed the layers traced under each loop setting: a tf.function traces once, so the
# record is made at tracing and kept per setting (a bench switches back and forth between
# runners traced earlier)
_paths: dict[str, set[str]] = {loop: set() for loop in LOOPS}


def configure_compute(loop: str = "bptt") -> None:
    """Process-wide, like the thread count: one run per process."""
    if loop not in LOOPS:
        raise ValueError(f"framework.keras_loop={loop!r} is not one of: {', '.join(LOOPS)}")
    _current["loop"] = loop


def reset_paths() -> None:
    """Forget what was traced so far (a new run in the same process, as in the tests)."""
    for paths in _paths.values():
        paths.clear()


def current_loop() -> str:
    return _current["loop"]


def note_path(path: str) -> None:
    """Called by the layer when it builds its loop (at tracing), with what computes it."""
    _paths[current_loop()].add(path)


def path_used() -> str:
    """What computed the recurrent layers traced under the current setting, joined by '+' in
    PATHS order ("tf.function" where the compiled op was unavailable or did not cover a layer,
    and before any layer was traced)."""
    return "+".join(p for p in PATHS if p in _paths[current_loop()]) or "tf.function"
