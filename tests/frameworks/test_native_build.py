"""The compiled builds (frameworks/native.py) never hang a run nor silently slow it down, since
the compiled loops are meant to run by default and one broken cache would stall whole sweeps:

- Lock: a lock whose holder is gone (a kill -9) is broken at once; a live holder is waited for
  at most the bound, with one warning naming the directory and the holder's pid; a lock with
  no pid (torch's baton, ours before its first write) is broken once untouched for STALE_S.
- Kill -9 mid-build: a real torch build killed while compiling (the whole process group, as a
  lost node) leaves `build.ninja` and torch's empty `lock`; the rerun finishes within a bound
  with a working library (before: torch's FileBaton waited for ever).
- Truncated library: a cached library that does not load is rebuilt once and loads (before:
  every run warned and ran the slow loop).
- Two first builds at once, both frameworks: two processes race on an empty build directory;
  both end with a working library, one built it while the other said it waits for that pid.
- No compiler: a training run of each framework with the compiled loop asked for finishes,
  with one warning naming the slower loop that ran instead.

Real builds run in subprocesses into a temporary cache ($RDS_NATIVE_CACHE): a few, shared
through module-scoped fixtures (e2e: each is one build of a binding).
"""

from __future__ import annotations

import _ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from frameworks import native
from tests.conftest import REPO, TINY_RT

# one xdist worker for the compiled builds (this, torch_backend/test_fused_loop.py,
# keras_backend/test_native_loop.py): real g++ builds under time bounds, each module-scoped
# build made once, no first build in results/native racing another of these
pytestmark = pytest.mark.xdist_group("native_build")

# A build on a small shared machine takes up to a few minutes: a rerun past this bound hangs.
BUILD_BOUND_S = 600
CHILD = """
import json, os, sys, warnings
warnings.simplefilter("always")
if sys.argv[1] == "torch":
    import torch
    from frameworks.torch_backend import fused_loop as binding
    works = binding.BUILD.available() and binding.run(
        "lstm", torch.ones(2, 3, 4), torch.zeros(2, 5), torch.zeros(2, 5), torch.ones(20, 4),
        torch.ones(20, 5), torch.zeros(20), None, None, None, []) is not None
else:
    import tensorflow as tf
    from frameworks.keras_backend import native_loop as binding
    works = binding.BUILD.available() and binding.run(
        "lstm", tf.ones((3, 2, 4)), tf.zeros((2, 5)), tf.zeros((2, 5)), tf.ones((4, 20)),
        tf.ones((5, 20)), tf.zeros((20,)), None, None, None, []) is not None
print(json.dumps({"pid": os.getpid(), "works": bool(works), "reason": binding.BUILD.reason}))
"""
UNAVAILABLE = "the compiled loop is unavailable"


# ---- helpers -------------------------------------------------------------------------------
def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "RDS_NATIVE_CACHE": str(cache), "PYTHONUNBUFFERED": "1", **extra}


def _start(framework: str, cache: Path, **extra: str) -> subprocess.Popen:
    """One process building (or loading) `framework`'s binding, in its own process group."""
    return subprocess.Popen([sys.executable, "-c", CHILD, framework], cwd=REPO,
                            env=_env(cache, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = BUILD_BOUND_S) -> tuple[dict, str]:
    """(the child's report, its stderr); the child's process group killed past `timeout`."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"still building or waiting after {timeout} s")
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


def _build_dir(cache: Path, prefix: str) -> Path:
    found = [d for d in cache.glob(f"{prefix}-*") if d.is_dir()]
    assert len(found) == 1, found
    return found[0]


def _holder(code: str, directory: Path) -> subprocess.Popen:
    """A live Python process that takes `directory`'s build lock and runs `code` holding it."""
    script = (f"from pathlib import Path; from frameworks import native\n"
              f"with native.locked(Path({str(directory)!r})):\n"
              f"    print('held', flush=True)\n    {code}\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


# ---- the lock ------------------------------------------------------------------------------
def test_a_lock_whose_holder_was_killed_is_broken_at_once(tmp_path):
    proc = _holder("import time; time.sleep(600)", tmp_path)
    proc.kill()
    proc.wait()
    lock = json.loads((tmp_path / native.LOCK).read_text())
    assert lock == {"pid": proc.pid, "host": socket.gethostname()}  # left behind, with its pid
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with native.locked(tmp_path, wait_s=30):
            assert json.loads((tmp_path / native.LOCK).read_text())["pid"] == os.getpid()
    assert time.monotonic() - start < native.NOTICE_S
    assert not caught and not (tmp_path / native.LOCK).exists()


def test_a_live_holder_is_waited_for_within_the_bound_with_one_warning(tmp_path):
    proc = _holder("import time; time.sleep(600)", tmp_path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(TimeoutError, match=f"pid {proc.pid}"), \
                    native.locked(tmp_path, wait_s=native.NOTICE_S + 1):
                pass
    finally:
        proc.kill()
        proc.wait()
    assert [w.category for w in caught] == [native.BuildWait]
    assert str(tmp_path) in str(caught[0].message) and f"pid {proc.pid}" in str(caught[0].message)


def test_a_lock_without_a_pid_is_waited_for_until_untouched_for_the_stale_bound(tmp_path):
    """torch's baton, or a lock of ours not yet written: fresh, it is waited for; untouched for
    STALE_S (its writer would have written or touched it by then), it is broken."""
    lock = tmp_path / native.LOCK
    lock.touch()
    with pytest.raises(TimeoutError, match="not written its pid"), \
            native.locked(tmp_path, wait_s=0.5):
        pass
    old = time.time() - native.STALE_S - 1
    os.utime(lock, (old, old))
    with native.locked(tmp_path, wait_s=0.5):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_holder_elsewhere_is_judged_by_its_heartbeat(tmp_path, monkeypatch):
    """Another host's pid cannot be asked: its lock is live while touched every HEARTBEAT_S,
    and stale once untouched for STALE_S; our own holder keeps touching its lock."""
    lock = tmp_path / native.LOCK
    lock.write_text(json.dumps({"pid": 1, "host": "another-host"}))
    with pytest.raises(TimeoutError, match="pid 1 on another-host"), \
            native.locked(tmp_path, wait_s=0.5):
        pass
    old = time.time() - native.STALE_S - 1
    os.utime(lock, (old, old))
    monkeypatch.setattr(native, "HEARTBEAT_S", 0.1)
    with native.locked(tmp_path, wait_s=0.5):
        os.utime(lock, (old, old))
        time.sleep(0.5)
        assert time.time() - lock.stat().st_mtime < native.STALE_S


# ---- real builds ---------------------------------------------------------------------------
def _race(framework: str, cache: Path) -> list[tuple[dict, str]]:
    """Two first builds of `framework`'s binding at once on an empty cache."""
    procs = [_start(framework, cache) for _ in range(2)]
    return [_finish(p) for p in procs]


@pytest.fixture(scope="module")
def torch_race(tmp_path_factory) -> tuple[list[tuple[dict, str]], Path]:
    """(the two racing processes' reports and stderr, their build directory): one real build."""
    cache = tmp_path_factory.mktemp("torch_race")
    return _race("torch", cache), _build_dir(cache, "rds_fused_loop")


def _check_race(results: list[tuple[dict, str]]) -> None:
    """Both loaded a working library; one built while the other waited, naming its pid."""
    assert all(report["works"] for report, _ in results), results
    waits = [(report, line) for report, err in results for line in err.splitlines()
             if "BuildWait" in line]
    assert len(waits) == 1, [err for _, err in results]
    waiter, line = waits[0]
    builder = next(report for report, _ in results if report is not waiter)
    assert re.search(rf"pid {builder['pid']}\b", line), line
    assert not any(UNAVAILABLE in err for _, err in results)


@pytest.mark.e2e
def test_two_first_builds_at_once_torch(torch_race):
    results, directory = torch_race
    _check_race(results)
    assert (directory / "rds_fused_loop.so").exists() and not (directory / native.LOCK).exists()


@pytest.mark.e2e
@pytest.mark.keras
def test_two_first_builds_at_once_keras(tmp_path):
    _check_race(_race("keras", tmp_path))
    directory = _build_dir(tmp_path, "rds_gal_loop")
    assert sorted(p.name for p in directory.iterdir()) == ["rds_gal_loop.so"]


def test_a_library_cut_short_is_told_from_a_whole_one(tmp_path):
    """A real ELF library (Python's own _ctypes) cut short by one byte: mapping it could kill
    the process with SIGBUS, which no `except` catches, so it is found before it is loaded."""
    library = tmp_path / "lib.so"
    shutil.copy(_ctypes.__file__, library)
    assert native.whole(library)
    os.truncate(library, library.stat().st_size - 1)
    assert not native.whole(library)


@pytest.mark.e2e
@pytest.mark.parametrize("keep", [0.0, 0.33], ids=["empty", "a-third"])
def test_a_truncated_library_is_rebuilt_once_and_loads(torch_race, tmp_path, keep):
    """Empty, the loader refuses it (an error, caught, then the rebuild in the same process);
    a third, it is found cut short before it is mapped."""
    _, built = torch_race
    directory = tmp_path / built.name
    shutil.copytree(built, directory)
    library = directory / "rds_fused_loop.so"
    size = library.stat().st_size
    os.truncate(library, int(size * keep))  # a copy cut short (a full disk, a sync interrupted)
    report, err = _finish(_start("torch", tmp_path))
    assert report["works"], (report, err)
    assert UNAVAILABLE not in err
    assert library.stat().st_size > size * keep


@pytest.mark.e2e
def test_kill_9_mid_build_then_rerun_finishes_within_a_bound(tmp_path):
    first = _start("torch", tmp_path)
    deadline = time.monotonic() + BUILD_BOUND_S
    while not list(tmp_path.glob("*/build.ninja")):  # written just before ninja compiles
        assert first.poll() is None and time.monotonic() < deadline, "no build started"
        time.sleep(0.2)
    time.sleep(3)  # compiling now
    os.killpg(first.pid, signal.SIGKILL)  # the process and its compilers, as a lost node
    first.communicate()
    directory = _build_dir(tmp_path, "rds_fused_loop")
    assert (directory / "lock").exists() and not (directory / "rds_fused_loop.so").exists()
    report, err = _finish(_start("torch", tmp_path))
    assert report["works"], (report, err)
    assert UNAVAILABLE not in err and not (directory / "lock").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.keras)])
def test_without_a_compiler_a_run_finishes_with_one_warning(framework, tmp_path):
    """The compiler named by $CXX is missing: the run trains to the end on the slower loop."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [*TINY_RT, "train.epochs=1", "variant=keras_impl2", f"framework={framework}",
                 f"framework.{framework}_loop=cpp", f"tracking.uri={store}",
                 f"hydra.run.dir={tmp_path / 'hydra'}"]
    done = subprocess.run([sys.executable, "-m", "experiments.train", *overrides], cwd=REPO,
                          env=_env(tmp_path / "native", CXX="no-such-compiler"),
                          capture_output=True, text=True, timeout=BUILD_BOUND_S)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if UNAVAILABLE in line]
    assert len(lines) == 1, done.stderr[-3000:]
    assert "no-such-compiler" in lines[0] and "which is slower" in lines[0]
    assert "FINISHED" in done.stdout + done.stderr
