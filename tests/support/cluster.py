"""A real one-node SLURM cluster and a real MLflow tracking server on 127.0.0.1, for
tests/e2e/test_cluster.py (marker `cluster`).

Everything lives in one temporary folder: slurm.conf, the controller's state, slurmd's spool,
munged's socket, the daemons' logs, the server's SQLite store and its artifact root. The daemons
come from Debian's packages (`slurmctld slurmd slurm-client munge`; .ci/run installs them) and
run in the foreground as children of the test, each in its own process group, so that `stop`
ends exactly them, by PID. Nothing here touches /etc/slurm, /run/munge or any other store:
the only shared file read is munge's key, /etc/munge/munge.key (created by the munge package).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from experiments.tracking_store import CREDENTIAL_ENV

MUNGE_KEY = Path("/etc/munge/munge.key")
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def missing_tools() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None and
            not Path("/usr/sbin", name).exists()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM to the process group this test started (its leader is `proc`), SIGKILL after
    `timeout`; never anything else."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def wait_until(check, timeout: float, what: str, logs: list[Path] = (), every: float = 0.3):
    """Poll `check()` until it returns something truthy; fail naming `what` and the logs' tails."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            tails = "\n".join(f"--- {p}:\n{tail(p)}" for p in logs)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
        time.sleep(every)


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as e:
        return f"({e})"


@dataclass
class Slurm:
    """munged + slurmctld + slurmd for one node (`localhost`: this machine's cores and memory),
    partition `debug`, no accounting, proctrack/linuxproc, task/none."""

    root: Path
    conf: Path = field(init=False)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.conf = self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, squeue, scancel, submitit) needs to reach this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def log(self, name: str) -> Path:
        return self.root / "log" / f"{name}.log"

    def write_conf(self) -> None:
        for sub in ("state", "spool", "log", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        cpus = min(os.cpu_count() or 1, len(os.sched_getaffinity(0)))  # what slurmd will find
        r = self.root
        ctld, slurmd = free_port(), free_port()
        while slurmd == ctld:
            slurmd = free_port()
        self.conf.write_text(f"""\
ClusterName=rdstest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r / 'munge' / 'munge.socket'}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={self.log('slurmctld')}
SlurmdLogFile={self.log('slurmd')}
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb - 512} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")

    def start(self) -> None:
        self.write_conf()
        r = self.root
        # munged runs as the owner of the key (the munge user on Debian), as its init script does
        owner = MUNGE_KEY.stat().st_uid
        os.chown(r / "munge", owner, -1)
        self._spawn("munged", [
            _tool("munged"), "--foreground", f"--socket={r / 'munge' / 'munge.socket'}",
            f"--key-file={MUNGE_KEY}", f"--pid-file={r / 'munge' / 'munged.pid'}",
            f"--log-file={r / 'munge' / 'munged.log'}", f"--seed-file={r / 'munge' / 'seed'}",
        ], user=owner)
        wait_until(lambda: (r / "munge" / "munge.socket").exists(), 30, "munged's socket",
                   [self.log("munged.out"), r / "munge" / "munged.log"])
        self._spawn("slurmctld", [_tool("slurmctld"), "-D", "-f", str(self.conf)])
        wait_until(self._controller_up, 60, "slurmctld", [self.log("slurmctld.out"),
                                                           self.log("slurmctld")])
        self._spawn("slurmd", [_tool("slurmd"), "-D", "-f", str(self.conf), "-N", "localhost"])
        wait_until(self._node_idle, 60, "node localhost idle", [self.log("slurmd.out"),
                                                               self.log("slurmd")])

    def _spawn(self, name: str, argv: list[str], user: int | None = None) -> None:
        with self.log(f"{name}.out").open("w") as out:
            self.procs[name] = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env=self.env, user=None if user in (None, os.getuid()) else user,
            )

    def run(self, *argv: str, check: bool = True, timeout: float = 30):
        out = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode:
            raise AssertionError(f"{' '.join(argv)}: exit {out.returncode}\n{out.stderr}")
        return out

    def _controller_up(self) -> bool:
        self._check_alive()
        return self.run("sinfo", "-h", check=False).returncode == 0

    def _node_idle(self) -> bool:
        self._check_alive()
        state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
        return state in ("idle", "mixed", "allocated")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n"
                                     f"{tail(self.log(name + '.out'))}\n{tail(self.log(name))}")

    def jobs(self) -> list[str]:
        """Ids of the jobs still queued or running (array tasks as <array>_<task>)."""
        out = self.run("squeue", "-h", "-o", "%i", check=False).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def stop(self) -> None:
        """Cancel what is left on this cluster, then stop slurmd, slurmctld and munged by PID."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            self.run("scancel", "--partition=debug", check=False)
            deadline = time.time() + 60
            while self.jobs() and time.time() < deadline:
                time.sleep(1)
        for name in ("slurmd", "slurmctld", "munged"):
            if name in self.procs:
                stop(self.procs[name])


@dataclass
class TrackingServer:
    """`mlflow server`: SQLite store in `root`, artifacts in `root/artifacts` served through the
    server (--serve-artifacts, clients see mlflow-artifacts:/ URIs), on 127.0.0.1:`port`.

    With `auth`, the setup of docs/CLUSTER.md: MLflow's basic-auth app (`--app-name
    basic-auth`), its users in `root/auth.db`, the admin's password (random, never MLflow's
    legacy default) in `root/auth.ini` and the app's secret key in `root/server.env`, both mode
    600 and read through `--env-file`: no secret on the server's command line."""

    root: Path
    auth: bool = False
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    starts: int = 0
    admin: tuple[str, str] = ("admin", "")

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / f"mlflow-server-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        (self.root / "artifacts").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
               # no huey job-runner processes: this store needs none of the server's jobs
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        for name in (*CREDENTIAL_ENV, "MLFLOW_AUTH_ADMIN_PASSWORD"):
            env.pop(name, None)  # the server reads its secrets from its files only
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", *self._auth_args(), "server",
                 *(["--app-name", "basic-auth"] if self.auth else []),
                 "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                 "--serve-artifacts", "--artifacts-destination", str(self.root / "artifacts"),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self.healthy, 120, f"mlflow server on {self.uri}", [self.log])

    def _auth_args(self) -> list[str]:
        """`--env-file <root>/server.env`, written with the auth config on the first start."""
        if not self.auth:
            return []
        env_file = self.root / "server.env"
        if not env_file.exists():
            self.admin = ("admin", secrets.token_urlsafe(16))
            _private(self.root / "auth.ini", AUTH_INI.format(
                db=self.root / "auth.db", user=self.admin[0], password=self.admin[1]))
            _private(env_file, f"MLFLOW_AUTH_CONFIG_PATH={self.root / 'auth.ini'}\n"
                               f"MLFLOW_FLASK_SERVER_SECRET_KEY={secrets.token_hex(24)}\n")
        return ["--env-file", str(env_file)]

    def add_user(self, name: str) -> dict[str, str]:
        """Create a (non-admin) user as the admin, as docs/CLUSTER.md does; returns the
        environment variables a client authenticates with."""
        password = secrets.token_urlsafe(16)
        status, body = self.request("/api/2.0/mlflow/users/create", self.admin,
                                    {"username": name, "password": password})
        assert status == 200, (status, body)
        return dict(zip(CREDENTIAL_ENV, (name, password), strict=True))

    def request(self, path: str, user: tuple[str, str] | None = None,
                data: dict | None = None) -> tuple[int, str]:
        """(HTTP status, body) of a GET (POST with `data`) to the server, as `user` or
        anonymously."""
        request = urllib.request.Request(
            f"{self.uri}{path}", data=None if data is None else json.dumps(data).encode(),
            headers={"Content-Type": "application/json"})
        if user is not None:
            token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"mlflow server exited with {self.proc.returncode}:\n"
                                 f"{tail(self.log)}")
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


# docs/CLUSTER.md's auth.ini: no one but a user the admin created gets in, and each user sees
# only the experiments it created or was granted
AUTH_INI = """\
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{db}
admin_username = {user}
admin_password = {password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def _private(path: Path, text: str) -> None:
    """Write `text` to a new file only its owner can read (mode 600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def make_root() -> Path:
    """A fresh folder that munged (not root) can traverse: /tmp/rds-cluster-XXXX, mode 755."""
    root = Path(tempfile.mkdtemp(prefix="rds-cluster-"))
    root.chmod(0o755)
    return root


def smoke_sweep(sweep_dir: Path, *overrides: str, env: dict[str, str] | None = None,
                launcher: str = "basic") -> subprocess.Popen:
    """`make sweep PRESET=smoke ARGS="hydra/launcher=<launcher> <overrides>"` on this machine,
    in the background, its output in `<sweep_dir>.log` (a new process group: `stop` ends it)."""
    log = sweep_dir.with_suffix(".log")
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "experiments.train", "--multirun", "sweep=smoke",
             f"hydra/launcher={launcher}", *overrides, f"hydra.sweep.dir={sweep_dir}"],
            cwd=Path(__file__).resolve().parents[2], stdout=out, stderr=subprocess.STDOUT,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
            start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> tuple[int, str]:
    """Wait for a sweep started by `smoke_sweep`: (exit code, its output)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise AssertionError(f"sweep still running after {timeout:.0f}s:\n{tail(log)}") from None
    return proc.returncode, log.read_text(errors="replace")
