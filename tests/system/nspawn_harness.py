"""A throw-away Debian 12 booted under systemd-nspawn, for the system tests.

The base tree comes from ``debootstrap --variant=minbase`` once and is cached under
``$FORGEONED_TEST_CACHE`` (default ``/var/cache/forgeoned-tests``), keyed by suite and package
list; building it is serialised by a lock file and published by an atomic rename, so a cached
tree is always complete. Each container boots the cached tree read-only with a tmpfs overlay
(``--volatile=overlay``): nothing a test does reaches the cache, and a fresh container costs a
boot, not a copy. ``--private-network`` gives it its own loopback, so its ports never clash
with the host's. One host directory is bind-mounted at ``/mnt/share`` to pass files in.

Every wait is bounded: ``wait_until`` polls a condition until a deadline and then raises with
what it was waiting for. ``Container.close`` powers the container off, and kills the nspawn
process group it started (by its id) if shutdown does not finish in time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from waiting import PollTimeout, poll_until

SUITE = "bookworm"
INCLUDE = ("systemd", "systemd-sysv", "dbus", "python3")
CACHE = Path(os.environ.get("FORGEONED_TEST_CACHE", "/var/cache/forgeoned-tests"))
SHARE = "/mnt/share"
DEBOOTSTRAP_TIMEOUT_S = 600.0
BOOT_TIMEOUT_S = 120.0
POLL_S = 0.1
# cgroup hierarchies in which systemd (the container's and nspawn) places processes: the
# named v1 one of a hybrid host and the unified v2 one (either may be the only one).
_CGROUP_HIERARCHIES = (
    Path("/sys/fs/cgroup/systemd"),
    Path("/sys/fs/cgroup/unified"),
    Path("/sys/fs/cgroup"),
)

T = TypeVar("T")


class HarnessError(RuntimeError):
    """The container could not be built, booted or driven."""


def wait_until(what: str, probe: Callable[[], T | None], timeout: float) -> T:
    """Poll ``probe`` until it returns something truthy, at most ``timeout`` seconds."""
    try:
        return poll_until(probe, timeout, what, interval=POLL_S)
    except PollTimeout as exc:
        raise HarnessError(str(exc)) from None


def missing_tools() -> list[str]:
    """Host programs the harness needs and cannot find."""
    tools = ("debootstrap", "systemd-nspawn", "nsenter", "dpkg-deb", "make")
    return [tool for tool in tools if shutil.which(tool) is None]


def base_image(include: Sequence[str] = INCLUDE) -> Path:
    """The cached minimal Debian tree for ``include``, built by debootstrap on first use."""
    key = hashlib.sha256(f"{SUITE} minbase {','.join(sorted(include))}".encode()).hexdigest()
    root = CACHE / f"{SUITE}-minbase-{key[:12]}"
    if root.is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if root.is_dir():  # built by another run while we waited for the lock
            return root
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(include)}",
            SUITE,
            str(partial),
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_S, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise HarnessError(f"debootstrap failed: {' | '.join(tail)}")
        partial.rename(root)
    return root


class Container:
    """One booted container; use as a context manager."""

    def __init__(self, image: Path, share: Path, log: Path) -> None:
        self.image = image
        self.share = share
        self.log = log
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0  # pid of the container's systemd, in the host's pid namespace
        self._cgroups: list[Path] = []

    def __enter__(self) -> Container:
        self.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def boot(self) -> None:
        Path("/run/systemd/nspawn/propagate").mkdir(parents=True, exist_ok=True)
        self.share.mkdir(parents=True, exist_ok=True)
        cgroups = self._own_cgroups()
        # nspawn (--keep-unit) makes its caller's cgroup the container's root: started from
        # a shared one, two containers' systemds would manage the same payload/system.slice
        # (one's stop then fails the other's start with 219/CGROUP). The shell moves itself
        # into this container's own cgroups, then execs nspawn.
        enter = "".join(f'echo $$ > "{c}/cgroup.procs" && ' for c in cgroups)
        cmd = [
            "sh",
            "-c",
            f'{enter}exec "$@"',
            "sh",
            "systemd-nspawn",
            "-q",
            "--register=no",
            "--keep-unit",
            "--volatile=overlay",
            "--private-network",
            f"--bind={self.share}:{SHARE}",
            "-D",
            str(self.image),
            "-b",
        ]
        with self.log.open("wb") as out:
            self._nspawn = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_booted()
        except BaseException:
            self.close()
            raise

    def _own_cgroups(self) -> list[Path]:
        """A fresh cgroup for this container in each hierarchy that has one per process."""
        self._cgroups = []
        for hierarchy in _CGROUP_HIERARCHIES:
            if (hierarchy / "cgroup.procs").exists():
                own = hierarchy / f"forgeoned-test-{os.getpid()}-{id(self):x}"
                own.mkdir(exist_ok=True)
                self._cgroups.append(own)
        return self._cgroups

    def _drop_cgroups(self) -> None:
        """Remove this container's cgroups (innermost first); what is still busy stays."""
        for own in self._cgroups:
            for dirpath, _, _ in sorted(os.walk(own), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
        self._cgroups = []

    def _wait_booted(self) -> None:
        self.leader = wait_until("the container's init", self._find_leader, 30)
        last: list[str] = []

        def booted() -> str | None:
            # --wait fails fast while the bus is not up yet (or is restarted during boot), and
            # may say "offline" before the manager answers; both mean "ask again".
            proc = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=60)
            state = proc.stdout.strip()
            last[:] = [state, proc.stderr.strip()]
            if state in ("maintenance", "stopping"):
                raise HarnessError(f"container did not boot: system state {state!r}")
            return state if state in ("running", "degraded") else None

        try:
            wait_until("the container to finish booting", booted, BOOT_TIMEOUT_S)
        except HarnessError as exc:
            raise HarnessError(f"{exc} (last answer: {last})") from exc

    def _find_leader(self) -> int | None:
        assert self._nspawn is not None
        if self._nspawn.poll() is not None:
            raise HarnessError(f"systemd-nspawn exited early, see {self.log}")
        pid = self._nspawn.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            return None
        return int(children[0]) if children else None

    def run(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 60,
        user: str | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the container (as ``user`` via runuser, else root)."""
        if not self.leader:
            raise HarnessError("container is not running")
        inner = ["runuser", "-u", user, "--", *argv] if user else list(argv)
        cmd = ["nsenter", "-t", str(self.leader), "-a", *inner]
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise HarnessError(
                f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
            )
        return proc

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run a shell snippet inside the container."""
        return self.run("sh", "-ec", script, **kwargs)  # type: ignore[arg-type]

    def put(self, name: str, data: bytes) -> str:
        """Place ``data`` in the shared directory; returns its path inside the container."""
        (self.share / name).write_bytes(data)
        return f"{SHARE}/{name}"

    def close(self, timeout: float = 60) -> None:
        """Power off; SIGKILL the nspawn process group we started if that takes too long."""
        proc, self._nspawn = self._nspawn, None
        leader, self.leader = self.leader, 0
        if proc is None or proc.poll() is not None:
            self._drop_cgroups()
            return
        proc.send_signal(signal.SIGTERM)  # nspawn turns it into an orderly poweroff
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Killing the container's init ends its whole pid namespace; then nspawn itself.
            with contextlib.suppress(ProcessLookupError):
                os.kill(leader, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            self._drop_cgroups()
