"""The store a run logs to: its URI (the default SQLite file under results/, $MLFLOW_TRACKING_URI,
or `tracking.uri`), the checks that refuse a bad one before anything runs, its creation, and the
errors that make it unusable (corrupt, read-only, locked, full, a server that says 401), each
turned into one line naming the store.

Why its own module: whether a store can be used is decided before a run starts and by every
command that opens one (train, sweep, bench, report, ui); what is written to it, and under which
names, is experiments/tracking.py's job. Importing this module imports neither MLflow nor a
framework. docs/STORE.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"  # the only folder a store's folder is created in
DEFAULT_STORE = RESULTS / "mlflow.db"
URI_ENV = "MLFLOW_TRACKING_URI"
# a tracking server's basic-auth user, read by MLflow's client (or ~/.mlflow/credentials)
CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
DEFAULT_URI_HELP = f"${URI_ENV} or sqlite:///<repo>/{DEFAULT_STORE.relative_to(REPO).as_posix()}"


class TrackingError(ValueError):
    """A tracking URI that cannot be used; the message says which and why."""


def default_uri(environ: Mapping[str, str] = os.environ) -> str:
    """`$MLFLOW_TRACKING_URI`, else the SQLite store under results/."""
    return environ.get(URI_ENV) or f"sqlite:///{DEFAULT_STORE}"


def resolve_uri(uri: str | None) -> str:
    """Check a tracking URI before any training: a malformed one or an unreachable server is an
    error now, not after an hour of training. Nothing is created here (bad input elsewhere in
    the config must leave no trace): `ensure_store` creates the store once every check passed."""
    uri = uri or default_uri()
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "sqlite":
        _store_folder(uri)
    elif scheme in ("http", "https"):
        _refuse_credentials(uri)
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).close()
        except (urllib.error.URLError, OSError) as e:
            raise TrackingError(f"tracking.uri={uri!r} is unreachable: {e}") from None
    elif scheme in ("file", ""):
        if not uri:
            raise TrackingError("tracking.uri is empty")
    else:
        raise TrackingError(
            f"tracking.uri={uri!r} has unsupported scheme {scheme!r}; "
            "allowed: sqlite:////abs/path.db, http(s)://host:port, file:///path"
        )
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for other stores and a missing path)."""
    path = uri.removeprefix("sqlite:///")
    return Path(path) if path and path != uri else None


def store_exists(uri: str) -> bool:
    """Whether a store is there to be read: a SQLite file must exist (opening a missing one
    would create it); a server's store always is."""
    path = sqlite_path(uri)
    return path is None or path.is_file()


def _store_folder(uri: str) -> Path:
    """The folder of a SQLite store, which must exist or lie under results/ (where
    `ensure_store` creates it): a typo in an absolute path must not build a tree at /. A
    relative path is refused: it would name another file wherever a job's working directory
    differs (a SLURM node, Hydra's chdir), and the store's artifact folder needs an absolute
    path."""
    path = sqlite_path(uri)
    if path is None:
        raise TrackingError(f"tracking.uri={uri!r} is malformed; use sqlite:////abs/path.db")
    if not path.is_absolute():
        raise TrackingError(f"tracking.uri={uri!r} is a relative path ({path}); allowed: an "
                            "absolute one, sqlite:////abs/path.db (four slashes)")
    folder = path.parent.resolve()
    if not folder.is_dir() and not folder.is_relative_to(RESULTS.resolve()):
        raise TrackingError(f"tracking.uri={uri!r}: folder {folder} does not exist; create it "
                            "first (only folders under results/ are created for you)")
    return folder


def ensure_store(uri: str) -> None:
    """Create the store's schema once; a fresh SQLite file crashes under parallel first writes,
    so sweeps call this in the launching process before any job starts, and the schema is
    created under a lock that two launching processes (two sweeps started together) share. A
    store that cannot be opened or written (corrupt, read-only) is one line naming it, not
    three chained tracebacks."""
    from mlflow.tracking import MlflowClient

    with store_errors(uri), _schema_lock(uri):
        MlflowClient(uri).search_experiments(max_results=1)


@contextlib.contextmanager
def _schema_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on `<store>.lock`, beside a SQLite store, while MLflow opens it.
    Why: MLflow creates the schema of a new file when a client first opens it, without a lock;
    two processes doing so together fail with `table ... already exists` in one of them.
    flock is released when the holder exits, even by kill -9. Other stores: no lock."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    _store_folder(uri).mkdir(parents=True, exist_ok=True)
    try:
        handle = open(path.with_name(f"{path.name}.lock"), "a")  # noqa: SIM115 - closed below
    except OSError:  # a read-only folder: nothing can be created there, MLflow says why
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn a store that cannot be opened or written (corrupt, read-only, locked) into one
    line naming it, instead of three chained SQLAlchemy tracebacks."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as e:  # noqa: BLE001 - SQLAlchemy/alembic/MLflow errors alike
        if full := no_space(e, uri):
            raise StoreFull(full) from None
        hint = f"; set {' and '.join(CREDENTIAL_ENV)} (docs/CLUSTER.md)" \
            if "error code 401" in str(e) else ""
        raise TrackingError(f"tracking store {uri!r} cannot be used: {_root_cause(e)}"
                            f"{hint}") from None


def _refuse_credentials(uri: str) -> None:
    """A server's user and password never go in the URI: the URI is logged (param
    `tracking.uri`, the sweep parent's overrides) and shows on command lines."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        shown = parts._replace(netloc=f"***@{parts.hostname}:{parts.port or ''}").geturl()
        raise TrackingError(
            f"tracking.uri={shown!r} carries credentials; allowed: http(s)://host:port, with "
            f"the user and password in {CREDENTIAL_ENV[0]} and {CREDENTIAL_ENV[1]} or in "
            "~/.mlflow/credentials (docs/CLUSTER.md)")


class StoreFull(RuntimeError):
    """The store's filesystem has no space left: not bad input; the message names the store."""


def no_space(error: BaseException, uri: str) -> str | None:
    """One line naming the store when `error`, or an error it came from, is a full filesystem
    (ENOSPC, SQLite's "database or disk is full"); None otherwise."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, StoreFull):
            return str(seen)
        if (isinstance(seen, OSError) and seen.errno == errno.ENOSPC) or \
                "database or disk is full" in str(seen):
            return (f"tracking store {uri!r}: no space left on its filesystem "
                    f"({_root_cause(seen)}); free space and rerun the same command: it redoes "
                    "only what did not complete")
        seen = seen.__cause__ or seen.__context__
    return None


class _FullDiskSaidOnce(logging.Filter):
    """Drops MLflow's own ERROR record, with its chained traceback, of a write the full disk
    refused: the caller's one line (`no_space`) says it, naming the store."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or no_space(error, "") is None


logging.getLogger("mlflow.store.db.utils").addFilter(_FullDiskSaidOnce())


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
