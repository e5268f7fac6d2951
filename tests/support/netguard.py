"""A network guard for subprocesses: a `sitecustomize.py` on PYTHONPATH that makes every name
lookup of a host other than localhost, and every connect to a non-loopback address, raise and
records the attempt to a file. Child processes (joblib/loky workers, `mlflow ui`, uvicorn) inherit
PYTHONPATH, so they are guarded too. Also a clean environment: HOME in a temporary folder and
none of the variables that would switch MLflow's telemetry off by themselves, so that only the
code under test can keep it off."""

from __future__ import annotations

import os
from pathlib import Path

SITECUSTOMIZE = '''
import os
import socket

_LOG = os.environ.get("NET_GUARD_LOG", "")
_LOCAL = {"127.0.0.1", "localhost", "::1", "", None}


def _blocked(what):
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"network guard: {what} blocked")


def _name(host):
    return host.decode() if isinstance(host, bytes) else host


_getaddrinfo = socket.getaddrinfo
_gethostbyname = socket.gethostbyname
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def getaddrinfo(host, *args, **kwargs):
    if _name(host) not in _LOCAL:
        _blocked(f"getaddrinfo {_name(host)}")
    return _getaddrinfo(host, *args, **kwargs)


def gethostbyname(host):
    if _name(host) not in _LOCAL:
        _blocked(f"gethostbyname {_name(host)}")
    return _gethostbyname(host)


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = _name(address[0])
        if not (host in _LOCAL or host.startswith("127.")):
            _blocked(f"connect {address!r}")


def connect(self, address):
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


socket.getaddrinfo = getaddrinfo
socket.gethostbyname = gethostbyname
socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
'''

# Each of these turns MLflow's telemetry off on its own (mlflow/telemetry/utils.py:
# is_telemetry_disabled, _is_ci_env_or_testing); pytest sets PYTEST_CURRENT_TEST, CI sets CI.
TELEMETRY_SWITCHES = (
    "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "_MLFLOW_TESTING_TELEMETRY",
    "PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "CI", "CIRCLECI", "GITLAB_CI", "JENKINS_URL",
    "TRAVIS", "TF_BUILD", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE",
    "TEAMCITY_VERSION", "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME",
    "RUNBOT_WORKER_ID",
)


def guarded_env(folder: Path) -> tuple[dict[str, str], Path, Path]:
    """(environment, guard log, HOME) for a guarded subprocess; everything lives in `folder`."""
    guard, home = folder / "guard", folder / "home"
    guard.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = folder / "blocked.log"
    env = {k: v for k, v in os.environ.items()
           if k not in TELEMETRY_SWITCHES and k not in ("XDG_CONFIG_HOME", "PYTHONPATH")}
    env.update(HOME=str(home), PYTHONPATH=str(guard), NET_GUARD_LOG=str(log),
               PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    return env, log, home


def blocked(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def installation_ids(home: Path) -> list[Path]:
    """MLflow's telemetry installation id: $XDG_CONFIG_HOME or ~/.config, mlflow/telemetry.json."""
    return sorted((home / ".config").glob("mlflow/*"))
