"""Compiled speed paths, framework-neutral: the core both bindings include
(csrc/rnn_loop.h), where their builds go, and which instruction set they target.

Each backend builds its own binding with its own toolchain on first use
(torch_backend/fused_loop.py through torch.utils.cpp_extension, keras_backend/native_loop.py
with TensorFlow's compile flags); a build lives in one directory per binding, framework version,
instruction set and source hash under results/native/, so a cache shared between machines never
hands a binary to a CPU that cannot run it, and an edited source builds anew. A build is tried
once per process (`Build`): where it fails -- no compiler, a compile error -- one warning says
why and the caller runs its framework's existing loop, never an error.

A broken cache never stalls a run (`Build` takes the lock below around every build and load):
- a kill -9 mid-build (an out-of-memory kill, a lost node) leaves its lock behind: `locked`
  breaks a lock whose holder is gone, and waits for a live builder at most WAIT_S seconds
  ($RDS_NATIVE_WAIT), saying once, as a warning, whom it waits for; past the bound that process
  runs its existing loop;
- a cached library that does not load (truncated, say) is deleted with its directory's other
  outputs and built once more; if that fails too, the one warning names the directory to delete.
Limit: a holder on another host is judged by its lock's heartbeat alone (STALE_S), so a builder
there whose heartbeat stalls that long (a frozen node, a file system that stops updating times)
is taken for dead and one build may run beside it; and a checkout older than this lock sharing
the cache does not take it.

The cache is results/native/ of this checkout, or $RDS_NATIVE_CACHE where set (tests build
into a temporary directory; a cluster may point every node at one shared directory).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CORE = Path(__file__).resolve().parent / "csrc" / "rnn_loop.h"
CACHE = Path(os.environ.get("RDS_NATIVE_CACHE") or
             Path(__file__).resolve().parents[1] / "results" / "native")
LOCK = "build.lock"  # in each build directory; holds {"pid", "host"} of the process building
# A process waits at most this long for another one's build, then runs its existing loop: a
# first build takes minutes on a small shared machine, so the bound leaves room for several.
WAIT_S = float(os.environ.get("RDS_NATIVE_WAIT") or 900)
HEARTBEAT_S = 10.0  # the holder touches its lock this often ...
STALE_S = 6 * HEARTBEAT_S  # ... so a lock untouched this long has no live holder
NOTICE_S = 2.0  # a wait this long is announced (a cached load holds the lock for less)
POLL_S = 0.2


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def isa() -> tuple[str, list[str]]:
    """(tag, compiler flags): AVX2 + FMA row kernels where the CPU has both (every x86 CPU since
    2013-15), else plain C++; AVX-512 code generation on top where the CPU has it (Eigen's GEMM
    tiles of the Keras binding ran 87 -> 100 GFLOP/s per thread with it on the bench machine)."""
    flags = cpu_flags()
    if not {"avx2", "fma"} <= flags:
        return "generic", []
    avx2 = ["-mavx2", "-mfma", "-DRDS_AVX2"]
    if {"avx512f", "avx512dq"} <= flags:
        return "avx512", [*avx2, "-mavx512f", "-mavx512dq"]
    return "avx2", avx2


def source_tag(*sources: Path) -> str:
    """A short hash of the sources' contents (the core included by every binding)."""
    digest = hashlib.sha256()
    for path in (CORE, *sources):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def compiler() -> str:
    """The C++ compiler a build runs ($CXX, else c++, as torch's builder does); where it is not on
    PATH, a RuntimeError that names it, for the fallback's warning."""
    name = os.environ.get("CXX", "c++")
    if shutil.which(name) is None:
        raise RuntimeError(f"no C++ compiler: {name!r} not found")
    return name


def build_dir(name: str, framework: str, version: str, *sources: Path) -> tuple[Path, list[str]]:
    """(the build's directory under CACHE, created; the instruction set's compiler flags)."""
    tag, flags = isa()
    version = re.sub(r"[^A-Za-z0-9_.-]", "_", version)
    directory = CACHE / f"{name}-{framework}{version}-{tag}-{source_tag(*sources)}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory, flags


class BuildWait(RuntimeWarning):
    """This process waits for another one's build of the same directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(lock: Path) -> tuple[dict[str, Any], os.stat_result] | None:
    """(what the lock says of its holder -- {} while it is still being written, or for a lock
    that is not ours --, its stat), or None once it is gone."""
    try:
        with lock.open() as file:
            stat = os.fstat(file.fileno())
            text = file.read()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        holder = {}
    return (holder if isinstance(holder, dict) else {}), stat


def _stale(holder: dict[str, Any], stat: os.stat_result) -> bool:
    """A lock has no live holder when it names a pid on this host that is gone (a kill -9: at
    once), or when it has not been touched for STALE_S: a holder on another host touches it
    every HEARTBEAT_S while alive, a live pid here that stopped touching it is a reused pid,
    and a lock without a pid is ours only for the instant between its creation and its first
    write."""
    pid = holder.get("pid")
    here = holder.get("host") == socket.gethostname() and isinstance(pid, int)
    if here and (pid == os.getpid() or not _alive(pid)):  # ours: a pid reused (a new container)
        return True
    return time.time() - stat.st_mtime > STALE_S


def _break(lock: Path, stat: os.stat_result) -> None:
    """Remove the stale lock judged from `stat`, unless it was replaced meanwhile: breakers
    take turns through a second lock, held for an instant (and itself broken past STALE_S)."""
    guard = lock.with_name(lock.name + ".break")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - guard.stat().st_mtime > STALE_S:
                guard.unlink()
        return
    try:
        with contextlib.suppress(FileNotFoundError):
            if lock.stat().st_ino == stat.st_ino:
                lock.unlink()
    finally:
        os.close(fd)
        guard.unlink(missing_ok=True)


def _take(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as file:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, file)
    return True


def _who(holder: dict[str, Any]) -> str:
    if "pid" not in holder:
        return "a process that has not written its pid"
    return f"pid {holder['pid']} on {holder.get('host', 'an unknown host')}"


@contextlib.contextmanager
def _heartbeat(lock: Path) -> Iterator[None]:
    """Touch the lock every HEARTBEAT_S while the body runs (a waiter on another host, which
    cannot see our pid, judges us alive by it)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(lock)

    thread = threading.Thread(target=beat, name=f"heartbeat {lock}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def locked(directory: Path, wait_s: float | None = None) -> Iterator[None]:
    """Hold `directory`'s build lock (LOCK: a file created exclusively, naming our pid and host)
    for the body. A stale lock (`_stale`) is broken; a live holder is waited for at most
    `wait_s` (default WAIT_S; announced once, as a BuildWait warning, after NOTICE_S), then a
    TimeoutError naming the directory and the holder (the caller's one warning says it)."""
    lock = directory / LOCK
    limit = WAIT_S if wait_s is None else wait_s
    start = time.monotonic()
    announced = False
    while not _take(lock):
        seen = _holder(lock)
        if seen is None:
            continue
        holder, stat = seen
        if _stale(holder, stat):
            _break(lock, stat)
            continue
        waited = time.monotonic() - start
        if waited > limit:
            raise TimeoutError(f"{directory} is still being built by {_who(holder)} after "
                               f"{limit:.0f} s")
        if waited > NOTICE_S and not announced:
            announced = True
            warnings.warn(f"waiting up to {limit:.0f} s for the build in {directory} by "
                          f"{_who(holder)}", BuildWait, stacklevel=3)
        time.sleep(POLL_S)
    mine = lock.stat().st_ino
    try:
        with _heartbeat(lock):
            yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if lock.stat().st_ino == mine:  # not a lock taken after ours was judged stale
                lock.unlink()


def whole(library: Path) -> bool:
    """False for an ELF library cut short (a full disk, an interrupted copy): its section headers
    or a loadable segment end past the file's end. Mapping such a file kills the process with
    SIGBUS, which no `except` catches, so it is never loaded; anything that is not a 64-bit
    little-endian ELF file is left to the loader, which refuses it with an error."""
    with library.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        head = file.read(64)
        if len(head) < 64 or head[:6] != b"\x7fELF\x02\x01":
            return True
        phoff, shoff = struct.unpack_from("<QQ", head, 0x20)
        phsize, phnum, shsize, shnum = struct.unpack_from("<HHHH", head, 0x36)
        file.seek(phoff)
        table = file.read(phsize * phnum)
    if len(table) < phsize * phnum or shoff + shsize * shnum > size:
        return False
    for entry in range(phnum):
        kind, = struct.unpack_from("<I", table, entry * phsize)
        offset, = struct.unpack_from("<Q", table, entry * phsize + 8)
        length, = struct.unpack_from("<Q", table, entry * phsize + 32)
        if kind == 1 and offset + length > size:  # PT_LOAD
            return False
    return True


def _clear(directory: Path) -> None:
    """Delete a build directory's outputs, our held lock aside."""
    for entry in directory.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


class Build:
    """One binding's build, tried once per process: `available()` builds (or loads the cached
    build) on the first call and remembers the outcome; a failure warns once, with the reason,
    and every later call answers False at no cost.

    The binding gives `locate` (its build directory under CACHE and the instruction set's flags,
    `build_dir`) and `build` (directory, flags -> what it loaded; it builds what is missing and
    loads `library` from the directory). Both run under the directory's lock (`locked`); a
    failure while `library` was already there (a cached build that does not load) clears the
    directory and builds once more."""

    def __init__(self, library: str, locate: Callable[[], tuple[Path, list[str]]],
                 build: Callable[[Path, list[str]], Any], switch: str, fallback: str,
                 warning: type[Warning]):
        self.library, self._locate, self._build = library, locate, build
        self.switch, self.fallback, self.warning = switch, fallback, warning
        self.result: Any = None  # what the build returned (the Keras binding: its ops)
        self.reason: str | None = None  # why it failed
        self._tried = False

    def fresh(self) -> Build:
        """The same build, not yet tried (tests start from a process that never built)."""
        return Build(self.library, self._locate, self._build, self.switch, self.fallback,
                     self.warning)

    @property
    def loaded(self) -> bool:
        """Built (or loaded from the cache) in this process already; asking never builds."""
        return self._tried and self.reason is None

    def _quiet(self, directory: Path, flags: list[str]) -> Any:
        with warnings.catch_warnings():  # the one warning of `available` is all a failure shows
            warnings.simplefilter("ignore")
            return self._build(directory, flags)

    def _run(self) -> Any:
        compiler()
        directory, flags = self._locate()
        with locked(directory):
            library = directory / self.library
            if not library.exists():
                return self._quiet(directory, flags)
            if whole(library):
                with contextlib.suppress(Exception):  # a cached library that does not load
                    return self._quiet(directory, flags)
            _clear(directory)  # a damaged cached library: build it once more
            try:
                return self._quiet(directory, flags)
            except Exception as exc:
                raise RuntimeError(f"{directory} does not build or load; delete it to build "
                                   f"anew ({_first_line(exc)})") from exc

    def available(self) -> bool:
        if not self._tried:
            self._tried = True
            try:
                self.result = self._run()
            except Exception as exc:  # noqa: BLE001  (no compiler, no ninja, a compile error)
                self.reason = f"{type(exc).__name__}: {_first_line(exc)}"
                warnings.warn(f"{self.switch}: the compiled loop is unavailable ({self.reason}); "
                              f"running {self.fallback} instead, which is slower", self.warning,
                              stacklevel=3)
        return self.reason is None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
