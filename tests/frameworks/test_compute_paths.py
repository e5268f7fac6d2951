"""The one choice of a compute path (frameworks/compute.py) over each backend's list of paths:
`auto` takes the fastest that covers a call; an explicit loop that cannot compute a call says so
once, by name; a gap in the code (a cell or hook the fastest path lacks) is said once under
`auto` too, while a property of the machine (a GPU) is not; an unknown loop is refused. Both
compiled paths cover the LSTM and the GRU with every hook that declares its core slots."""

from __future__ import annotations

import warnings

import pytest

from frameworks import compute as C
from frameworks.compute import Call, Compute, candidates
from frameworks.keras_backend import compute as keras_compute
from frameworks.torch_backend import compute as torch_compute

TORCH, KERAS = torch_compute.PATHS, keras_compute.PATHS


def names(paths, loop: str, call: Call, setting: str = "framework.torch_loop",
          compile: bool = False) -> list[str]:  # noqa: A002
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning expected here
        return [p.name for p in candidates(paths, Compute(loop, compile), call, setting)]


def warned(paths, loop: str, call: Call, setting: str) -> list[str]:
    C.candidates.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        candidates(paths, Compute(loop), call, setting)
        candidates(paths, Compute(loop), call, setting)  # the same call again: no second one
    return [str(w.message) for w in caught if issubclass(w.category, C.ComputePathWarning)]


GAL_LSTM = Call("lstm", "cpu", "float32", 0)
ZONEOUT_GRU = Call("gru", "cpu", "float32", None, frozenset({"zoneout"}))


def test_auto_takes_the_fastest_path_that_covers_the_call():
    assert names(TORCH, "auto", GAL_LSTM) == ["cpp", "eager"]
    assert names(TORCH, "auto", ZONEOUT_GRU) == ["cpp", "eager"]
    assert names(TORCH, "auto", Call("lstm", "cuda", "float32", 2)) == ["eager"]
    assert names(TORCH, "auto", Call("gru", "cuda", "float32", None,
                                     frozenset({"candidate"}))) == ["eager"]
    assert names(TORCH, "auto", Call("lstm", "cpu", "float16", 1)) == ["eager"]
    assert names(TORCH, "auto", GAL_LSTM, compile=True) == ["compile"]
    assert names(KERAS, "auto", GAL_LSTM, "framework.keras_loop") == ["cpp", "tf.function"]
    assert names(KERAS, "auto", Call("gru", "cpu", "float32", 1),
                 "framework.keras_loop") == ["cpp", "tf.function"]
    assert names(KERAS, "auto", ZONEOUT_GRU, "framework.keras_loop") == ["cpp", "tf.function"]
    assert names(KERAS, "auto", Call("lstm", "cpu", "float32", None,
                                     frozenset({"candidate", "zoneout"})),
                 "framework.keras_loop") == ["cpp", "tf.function"]
    assert names(KERAS, "auto", Call("lstm", "gpu", "float32", 0),
                 "framework.keras_loop") == ["tf.function"]
    assert names(KERAS, "auto", Call("gru", "cpu", "float64", None, frozenset({"candidate"})),
                 "framework.keras_loop") == ["tf.function"]


def test_an_explicit_loop_starts_at_its_path():
    assert names(TORCH, "cpp", GAL_LSTM) == ["cpp", "eager"]
    assert names(TORCH, "eager", GAL_LSTM) == ["eager"]
    assert names(KERAS, "bptt", GAL_LSTM, "framework.keras_loop") == ["tf.function"]


def test_an_explicit_loop_that_cannot_compute_a_call_says_so_once_by_name():
    said = warned(TORCH, "cpp", Call("lstm", "cuda", "float32", 0), "framework.torch_loop")
    assert said == ["framework.torch_loop=cpp: `cpp` does not compute a LSTM Gal step loop "
                    "on cuda float32 (device cuda; it computes cpu); `eager` runs it"]
    said = warned(KERAS, "cpp", Call("gru", "cpu", "float64", None, frozenset({"candidate"})),
                  "framework.keras_loop")
    assert len(said) == 1 and "dtype float64; it computes float32" in said[0]
    assert "`tf.function` runs it" in said[0]


def test_auto_says_once_when_a_code_gap_slows_a_call_but_not_for_the_machine():
    unknown = Call("gru", "cpu", "float32", None, frozenset({"candidate", "new"}))
    said = warned(KERAS, "auto", unknown, "framework.keras_loop")
    assert len(said) == 1 and "the new hook" in said[0] and "slower" in said[0]
    assert "`tf.function` runs it" in said[0]
    said = warned(KERAS, "auto", Call("rnn", "cpu", "float32"), "framework.keras_loop")
    assert len(said) == 1 and "cell rnn; it computes gru, lstm" in said[0]
    assert warned(KERAS, "auto", Call("lstm", "gpu", "float32", 0), "framework.keras_loop") == []
    assert warned(TORCH, "auto", Call("lstm", "cuda", "float32", 0), "framework.torch_loop") == []
    for paths, setting in ((TORCH, "framework.torch_loop"), (KERAS, "framework.keras_loop")):
        assert warned(paths, "auto", ZONEOUT_GRU, setting) == []  # cpp covers it


def test_a_hook_without_core_slots_is_a_code_gap_of_the_compiled_path():
    """A new hook that declares no slots for the compiled core is not in the cpp path's list
    (either backend: the list is derived from the hook classes): `auto` runs it on the autograd
    loop and says so."""
    assert torch_compute.CPP.hooks == {"candidate", "zoneout"}
    assert keras_compute.CPP.hooks == {"candidate", "zoneout"}
    said = warned(TORCH, "auto", Call("lstm", "cpu", "float32", None,
                                      frozenset({"zoneout", "new"})), "framework.torch_loop")
    assert len(said) == 1 and "the new hook" in said[0] and "`eager` runs it" in said[0]


@pytest.mark.parametrize("paths,setting,allowed", [
    (TORCH, "framework.torch_loop", "auto, cpp, eager"),
    (KERAS, "framework.keras_loop", "auto, cpp, bptt")])
def test_an_unknown_loop_is_refused_naming_the_setting_and_the_allowed(paths, setting, allowed):
    with pytest.raises(ValueError) as info:
        C.check(paths, Compute("fast"), setting)
    assert str(info.value) == f"{setting}='fast' is not one of: {allowed}"
    with pytest.raises(ValueError, match="no torch.compile path"):
        C.check(KERAS, Compute("auto", True), setting)


def test_the_record_joins_what_ran_in_path_order():
    record = torch_compute.record()
    assert record.joined() == "none"
    record.note("eager")
    record.note("cpp")
    assert record.joined() == "cpp+eager"
    assert keras_compute.record().joined() == "tf.function"
