"""Issue 12, item 7: SIGHUP or SIGTERM in the first milliseconds of start-up, before the
daemon's handlers exist, used to kill it (default action). Now they are held and acted upon.

Each test waits (bounded) until the new process has blocked the signals (``SigBlk`` in
``/proc/PID/status``: the first line of ``forgeoned.daemon.main``), sends the signal, and
checks the kernel holds it pending while no handler is installed yet (``ShdPnd`` set,
``SigCgt`` clear): this is the window where the signal used to be fatal.
"""

from __future__ import annotations

import signal
from pathlib import Path

from daemon_kit import Daemon, Env, drop, plugin
from waiting import poll_until

HELD = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)


def _mask(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _bit(sig: signal.Signals) -> int:
    return 1 << (sig - 1)


def _holding(pid: int) -> bool:
    """Whether the daemon itself blocked the start-up signals. Between fork and exec the
    child blocks every signal (subprocess does), so the image must be the daemon's first:
    read ``cmdline`` before ``SigBlk``."""
    wanted = sum(_bit(s) for s in HELD)
    if b"forgeoned.daemon" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        return False
    return _mask(pid, "SigBlk") & wanted == wanted


def send_while_held(d: Daemon, sig: signal.Signals, timeout: float = 30.0) -> None:
    """Wait until the daemon holds the start-up signals, then send ``sig`` right away."""
    pid = d.proc.pid

    def holding() -> bool:
        assert d.proc.poll() is None, d.stderr()
        return _holding(pid)

    # The whole window is tens of milliseconds: look often.
    poll_until(holding, timeout, "the daemon to hold its start-up signals", interval=0.0005)
    d.proc.send_signal(sig)
    assert _mask(pid, "ShdPnd") & _bit(sig), "the signal was not held pending"
    assert not _mask(pid, "SigCgt") & _bit(sig), "a handler already existed: not the early case"


def test_an_early_sighup_is_held_then_reloads_after_ready(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    d = Daemon(env)
    try:
        send_while_held(d, signal.SIGHUP)
        ready = d.ready()
        assert "STATUS=1 plugin running" in ready
        d.wait_for("RELOADING=1", timeout=30)  # the held SIGHUP, acted upon after READY
        d.messages.clear()
        d.wait_for("READY=1", timeout=30)  # the reload is over
        assert d.proc.poll() is None
        assert d.invoke("hello") == b"hello@1.0.0:x"
        events = [e["event"] for e in env.audit_events()]
        assert events.index("daemon.started") < events.index("daemon.reloaded")
        assert d.stop() == 0
    finally:
        d.kill()


def test_an_early_sigterm_gives_a_clean_stop(tmp_path: Path) -> None:
    env = Env(tmp_path)
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    d = Daemon(env)
    try:
        send_while_held(d, signal.SIGTERM)
        assert d.proc.wait(60) == 0, d.stderr()
        events = [e["event"] for e in env.audit_events() if e["event"] != "audit.checkpoint"]
        assert events == ["plugin.installed", "daemon.started", "plugin.stopped", "daemon.stopped"]
        assert env.state()["active"]["hello"]["version"] == "1.0.0"  # kept for the next start
    finally:
        d.kill()
