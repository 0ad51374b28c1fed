"""A real single-node SLURM cluster for the tests, from Debian's packages.

`SlurmCluster(folder).start()` writes a munge key, slurm.conf, gres.conf and slurmdbd.conf
into `folder` and starts MariaDB, munged, slurmdbd, slurmctld and slurmd as child processes
of this one; `stop()` cancels the cluster's jobs and ends exactly those processes, by PID.
Accounting goes through slurmdbd into MariaDB, so `sacct` answers as on a real site.

The node has two fake GPUs, empty files named as GRES devices: slurmd logs that they are no
device files but counts and allocates them, and the tests need GPU jobs scheduled, not run.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# The Debian package (of those `make test` installs) that brings each program the cluster runs.
PROGRAMS = {
    "munged": "munge",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mariadb": "mariadb-server",
    "slurmdbd": "slurmdbd",
    "slurmctld": "slurm-wlm",
    "slurmd": "slurm-wlm",
    "sbatch": "slurm-wlm",
    "sacct": "slurm-wlm",
    "sacctmgr": "slurm-wlm",
}
# Client programs started inside a job (the executor plugin's `srun`) get an environment
# without SLURM_CONF, so they read the default path: the cluster's config must be there too.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
# One cluster per machine at a time: the default config path and the node's name are shared.
LOCK = Path("/tmp/lidcseg-slurm-cluster.lock")
CLUSTER = "lidcseg-test"
ACCOUNT = "lidcseg"
NODE = "node1"
PARTITIONS = ("cpu", "gpu")  # the names workflow/profiles/slurm uses, as a site would have them


def missing_requirements() -> list[str]:
    """What this machine lacks to start the cluster, as words for a skip message."""
    missing = [
        f"{name} (package {package})"
        for name, package in PROGRAMS.items()
        if shutil.which(name) is None
    ]
    if not os.access(DEFAULT_CONF.parent if DEFAULT_CONF.parent.exists() else "/etc", os.W_OK):
        missing.append(f"write access to {DEFAULT_CONF} (the tests run as root in CI)")
    return missing


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, what: str, timeout: float = 60.0, log: Path | None = None) -> None:
    """Poll `check()` until it is true; fail naming `what` (and the daemon's log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"SLURM test cluster: {what} not ready after {timeout:.0f} s\n{tail}")


@dataclass
class Ports:
    mysql: int = field(default_factory=free_port)
    slurmdbd: int = field(default_factory=free_port)
    slurmctld: int = field(default_factory=free_port)
    slurmd: int = field(default_factory=free_port)


@dataclass
class SlurmCluster:
    folder: Path
    cpus: int = 8  # more than the CI machine has (config_overrides): the jobs are light
    memory_mb: int = 20000
    gpus: int = 2
    ports: Ports = field(default_factory=Ports)
    user: str = field(default_factory=getpass.getuser)
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)
    _saved_default_conf: bytes | None = None
    _wrote_default_conf: bool = False
    _lock_file: object = None

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.folder / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """The environment for SLURM's client programs (sbatch, sacct, ...)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- start ---------------------------------------------------------------------------
    def start(self) -> SlurmCluster:
        self._take_lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write_configs()
            self._start_munge()
            self._start_mariadb()
            self._start_slurmdbd()
            self._register_accounts()
            self._start_slurmctld()
            self._start_slurmd()
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self) -> None:
        # kept open while the cluster runs: closing it in stop() releases the flock
        self._lock_file = open(LOCK, "w")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)  # waits for another session's cluster

    def _write_configs(self) -> None:
        for name in ("state", "spool", "munge", "db"):
            (self.folder / name).mkdir(mode=0o700, exist_ok=True)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        devices = [self.folder / f"fakegpu{i}" for i in range(self.gpus)]
        for device in devices:
            device.touch()
        (self.folder / "gres.conf").write_text(
            f"NodeName={NODE} Name=gpu File={self.folder}/fakegpu[0-{self.gpus - 1}]\n"
        )
        self.conf.write_text(self._slurm_conf())
        dbd = self.folder / "slurmdbd.conf"
        dbd.write_text(self._slurmdbd_conf())
        dbd.chmod(0o600)  # slurmdbd refuses a config others can read (it holds a password)
        self._install_default_conf()

    def _slurm_conf(self) -> str:
        f, p = self.folder, self.ports
        partitions = "\n".join(
            f"PartitionName={name} Nodes={NODE} MaxTime=INFINITE State=UP "
            f"Default={'YES' if i == 0 else 'NO'}"
            for i, name in enumerate(PARTITIONS)
        )
        node = (
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} "
            f"Gres=gpu:{self.gpus} State=UNKNOWN"
        )
        return f"""\
ClusterName={CLUSTER}
SlurmctldHost={socket.gethostname()}(127.0.0.1)
SlurmctldPort={p.slurmctld}
SlurmdPort={p.slurmd}
SlurmUser={self.user}
SlurmdUser={self.user}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={f}/state
SlurmdSpoolDir={f}/spool
SlurmctldPidFile={f}/slurmctld.pid
SlurmdPidFile={f}/slurmd.pid
SlurmctldLogFile={f}/slurmctld.log
SlurmdLogFile={f}/slurmd.log
MailProg=/bin/true
MpiDefault=none
# No cgroups in a container: track processes by parent id, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# GPUs as a consumable resource (sbatch --gpus needs cons_tres); memory is consumable too,
# and a job that asks for none gets DefMemPerCPU instead of the whole node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
# The node's CPUs and memory are what this file says, not what the machine has.
SlurmdParameters=config_overrides
ReturnToService=2
# Accounting through slurmdbd (sacct), with GPUs in the job records. slurmdbd's auth
# socket is named here, as AccountingStoragePass.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={p.slurmdbd}
AccountingStoragePass={self.munge_socket}
AccountingStorageTRES=gres/gpu
# sacct shows the comment the executor plugin gives each job: its rule and wildcards.
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
{node}
{partitions}
"""

    def _slurmdbd_conf(self) -> str:
        f, p = self.folder, self.ports
        return f"""\
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
DbdAddr=127.0.0.1
DbdHost={socket.gethostname()}
DbdPort={p.slurmdbd}
SlurmUser={self.user}
PidFile={f}/slurmdbd.pid
LogFile={f}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={p.mysql}
StorageUser=slurm
StoragePass=slurm-test
StorageLoc=slurm_acct_db
"""

    def _install_default_conf(self) -> None:
        # A file of ours left by a killed run is not worth restoring; any other one is.
        if DEFAULT_CONF.exists() and f"ClusterName={CLUSTER}\n" not in DEFAULT_CONF.read_text(
            errors="replace"
        ):
            self._saved_default_conf = DEFAULT_CONF.read_bytes()
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.conf, DEFAULT_CONF)
        self._wrote_default_conf = True

    def _spawn(self, name: str, *command: str) -> subprocess.Popen:
        # the daemon writes to it for its whole life: no context manager to close it here
        log = open(self.folder / f"{name}.out", "w")  # noqa: SIM115
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )  # no terminal signal reaches it
        self.daemons[name] = process
        return process

    def _alive(self, name: str) -> bool:
        if self.daemons[name].poll() is not None:
            output = (self.folder / f"{name}.out").read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"SLURM test cluster: {name} exited ({self.daemons[name].returncode})\n{output}"
            )
        return True

    def _start_munge(self) -> None:
        m = self.folder / "munge"
        self._spawn(
            "munged",
            "munged",
            "--foreground",
            "--force",
            f"--socket={self.munge_socket}",
            f"--key-file={m}/munge.key",
            f"--pid-file={m}/munged.pid",
            f"--log-file={m}/munged.log",
            f"--seed-file={m}/munged.seed",
        )
        wait_until(
            lambda: self._alive("munged") and self.munge_socket.exists(),
            "munged",
            log=self.folder / "munged.out",
        )

    def _start_mariadb(self) -> None:
        db = self.folder / "db"
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={db}",
                f"--user={self.user}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        self._spawn(
            "mariadbd",
            "mariadbd",
            "--no-defaults",
            f"--datadir={db}",
            f"--user={self.user}",
            f"--socket={self.folder}/mysql.sock",
            f"--port={self.ports.mysql}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.folder}/mariadbd.pid",
            "--innodb-buffer-pool-size=64M",
            "--skip-log-bin",
        )
        wait_until(
            lambda: self._alive("mariadbd") and self._sql("SELECT 1").returncode == 0,
            "MariaDB",
            log=self.folder / "mariadbd.out",
        )
        grant = (
            "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-test';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )
        result = self._sql(grant)
        if result.returncode != 0:
            raise RuntimeError(f"SLURM test cluster: MariaDB user: {result.stderr}")

    def _sql(self, statement: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={self.folder}/mysql.sock",
                "-u",
                "root",
                "-e",
                statement,
            ],
            capture_output=True,
            text=True,
        )

    def _start_slurmdbd(self) -> None:
        self._spawn("slurmdbd", "slurmdbd", "-D")
        wait_until(
            lambda: (
                self._alive("slurmdbd")
                and self.run("sacctmgr", "-n", "list", "cluster").returncode == 0
            ),
            "slurmdbd",
            log=self.folder / "slurmdbd.log",
        )

    def _register_accounts(self) -> None:
        """The cluster, one account and this user in it (sbatch then needs no -A)."""
        for command in (
            ("add", "cluster", CLUSTER),
            ("add", "account", ACCOUNT, f"cluster={CLUSTER}"),
            ("add", "user", self.user, f"account={ACCOUNT}", f"cluster={CLUSTER}"),
        ):
            result = self.run("sacctmgr", "-i", *command)
            if result.returncode != 0:
                raise RuntimeError(
                    f"SLURM test cluster: sacctmgr {' '.join(command)}: "
                    f"{result.stdout}{result.stderr}"
                )

    def _start_slurmctld(self) -> None:
        self._spawn("slurmctld", "slurmctld", "-D", "-i")  # -i: no state from an earlier run
        wait_until(
            lambda: self._alive("slurmctld") and "UP" in self.run("scontrol", "ping").stdout,
            "slurmctld",
            log=self.folder / "slurmctld.log",
        )

    def _start_slurmd(self) -> None:
        self._spawn("slurmd", "slurmd", "-D", "-N", NODE)
        wait_until(
            lambda: self._alive("slurmd") and self.node_state() == "idle",
            f"slurmd ({NODE} idle)",
            log=self.folder / "slurmd.log",
        )

    # -- use -----------------------------------------------------------------------------
    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """A SLURM client program against this cluster."""
        return subprocess.run(
            command, capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def jobs(self, *fields: str) -> list[dict[str, str]]:
        """Every job this cluster ran, one record per allocation (not per step), from sacct."""
        result = self.run(
            "sacct",
            "--allusers",
            "--allocations",
            "--parsable2",
            "--noheader",
            "--starttime",
            "2000-01-01",
            "--format",
            ",".join(fields),
        )
        if result.returncode != 0:
            raise RuntimeError(f"sacct: {result.stderr}")
        return [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines()]

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-n", NODE, "-o", "%T").stdout.strip().split("\n")[0]

    # -- stop ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel the cluster's jobs, then end every daemon this object started, newest first."""
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            self._cancel_jobs()
        for name in reversed(list(self.daemons)):
            self._terminate(self.daemons.pop(name))
        self._restore_default_conf()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _cancel_jobs(self) -> None:
        try:
            self.run("scancel", "--user", self.user, "--full")
            wait_until(
                lambda: self.run("squeue", "-h").stdout.strip() == "",
                "the end of cancelled jobs",
                timeout=30,
            )
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # the daemons go anyway; slurmd's job steps end with their jobs' signals

    @staticmethod
    def _terminate(process: subprocess.Popen) -> None:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _restore_default_conf(self) -> None:
        if not self._wrote_default_conf:
            return
        if self._saved_default_conf is None:
            DEFAULT_CONF.unlink(missing_ok=True)
        else:
            DEFAULT_CONF.write_bytes(self._saved_default_conf)
        self._wrote_default_conf = False
