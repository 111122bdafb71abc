"""A one-node SLURM cluster on this machine, from Debian's packages, for the profile test.

:func:`slurm_cluster` installs ``slurmctld slurmd slurm-client munge`` with apt when they are
missing (root only), starts ``munged`` as user ``munge`` and ``slurmctld`` / ``slurmd`` as root on
a ``slurm.conf`` + ``gres.conf`` written to ``/etc/slurm`` (the default path: the job steps of the
snakemake plugin drop every ``SLURM_*`` variable, ``SLURM_CONF`` included, so ``srun`` inside a
job must find the config there; an existing config that is not ours is never overwritten - the
test skips), state and logs in a temporary folder, waits for the node to be idle and yields the
environment to run ``sbatch`` / snakemake with. On exit it shuts the daemons down, kills what it
started and removes its config files.

Settings that make a single container-like machine work: ``ProctrackType=proctrack/linuxproc``,
``TaskPlugin=task/none``, ``SelectType=select/cons_tres``, no accounting database, and a GPU gres
with ``File=/dev/null`` (without ``File=`` the node registers as invalid) so that GPU jobs can be
scheduled; ``srun``/``sbatch`` with a GPU then set ``CUDA_VISIBLE_DEVICES=0``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from debian import ensure_packages

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
CONF_DIR = Path("/etc/slurm")
MARKER = "# oncoflow one-node test cluster (tests/integration/slurm_cluster.py)"
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "munged")


def ensure_installed() -> None:
    """Install the Debian packages if missing; skip the test (with the reason) where we cannot."""
    ensure_packages(PACKAGES, BINARIES, "SLURM test")


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _munge_running() -> bool:
    return subprocess.run(["munge", "-n"], capture_output=True, check=False).returncode == 0


def _start_munge() -> bool:
    """Start munged as user munge unless one answers already; True when we started it."""
    if _munge_running():
        return False
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run([_sbin("mungekey"), "--create"], check=True)
        shutil.chown(key, "munge", "munge")
        key.chmod(0o600)
    subprocess.run(["runuser", "-u", "munge", "--", _sbin("munged")], check=True)
    for _ in range(50):
        if _munge_running():
            return True
        time.sleep(0.1)
    msg = "munged did not come up"
    raise RuntimeError(msg)


def _node_line() -> str:
    """``NodeName=<host> CPUs=... RealMemory=...`` as ``slurmd -C`` sees this machine, + 1 GPU."""
    out = subprocess.run([_sbin("slurmd"), "-C"], capture_output=True, text=True, check=True)
    line = out.stdout.splitlines()[0].strip()
    memory = next(f for f in line.split() if f.startswith("RealMemory="))
    # leave memory for the machine itself; jobs ask for small amounts
    usable = max(1000, int(memory.split("=")[1]) - 2000)
    line = line.replace(memory, f"RealMemory={usable}")
    return f"{line} Gres=gpu:1 State=UNKNOWN"


def write_config(folder: Path, conf_dir: Path = CONF_DIR) -> Path:
    """Write slurm.conf + gres.conf of a one-node cluster (state, logs in ``folder``)."""
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True)
    host_name = host.stdout.strip()
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                MARKER,
                "ClusterName=oncoflowtest",
                f"SlurmctldHost={host_name}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                f"StateSaveLocation={folder / 'state'}",
                f"SlurmdSpoolDir={folder / 'spool'}",
                f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
                f"SlurmdPidFile={folder / 'slurmd.pid'}",
                f"SlurmctldLogFile={folder / 'slurmctld.log'}",
                f"SlurmdLogFile={folder / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "GresTypes=gpu",
                "ReturnToService=2",
                "MpiDefault=none",
                "SchedulerType=sched/backfill",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "JobCompType=jobcomp/none",
                "MinJobAge=600",
                "SlurmdTimeout=60",
                _node_line(),
                f"PartitionName=debug Nodes={host_name} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    (conf_dir / "gres.conf").write_text(
        f"{MARKER}\nNodeName={host_name} Name=gpu File=/dev/null Count=1\n"
    )
    return conf


def _wait_idle(env: dict[str, str], folder: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env, check=False
        )
        state = out.stdout.strip()
        if state in ("idle", "mixed", "allocated"):
            return
        time.sleep(1)
    files = (folder / "slurmctld.log", folder / "slurmd.log")
    logs = "".join(p.read_text()[-2000:] for p in files if p.exists())
    msg = f"SLURM node not idle after {timeout:.0f} s (state {state!r}); logs:\n{logs}"
    raise RuntimeError(msg)


def _kill_pidfile(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(path.read_text().strip()), signal.SIGTERM)


@contextlib.contextmanager
def slurm_cluster(folder: Path) -> Iterator[dict[str, str]]:
    """Bring a one-node cluster up in ``folder``; yield the environment for its clients."""
    ensure_installed()
    if os.geteuid() != 0:
        pytest.skip("SLURM test: the daemons of the one-node cluster must run as root")
    for name in ("slurm.conf", "gres.conf"):
        existing = CONF_DIR / name
        if existing.exists() and MARKER not in existing.read_text():
            pytest.skip(f"SLURM test: {existing} belongs to a real cluster; not overwriting it")
    started_munge = _start_munge()
    conf = write_config(folder)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        subprocess.run([_sbin("slurmctld"), "-f", str(conf)], check=True, env=env)
        subprocess.run([_sbin("slurmd"), "-f", str(conf)], check=True, env=env)
        _wait_idle(env, folder)
        yield env
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True, check=False)
        time.sleep(1)
        for pidfile in ("slurmd.pid", "slurmctld.pid"):
            _kill_pidfile(folder / pidfile)
        if started_munge:
            subprocess.run(["pkill", "-x", "munged"], check=False)
        for name in ("slurm.conf", "gres.conf"):
            (CONF_DIR / name).unlink(missing_ok=True)
