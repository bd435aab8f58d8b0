"""Quarterly reviews through a real daemon with a manual clock: a plugin's review is due
``review_interval_days`` after its first activation, overdue after that (metric, compliance
report), due again an interval after ``forgeonectl review`` (``plugin.reviewed`` with who,
version and note), and due at once after a quarantine, with the incident listed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from daemon_kit import KEY, Env, JumpClock, drop, in_process, manifest, plugin, plugin_wat

from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli import main
from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.cli.exitcodes import OK

DAY = 86400.0
RESTART = """[restart]
max_failures = 1
window_s = 60
backoff_initial_s = 0.01
backoff_max_s = 0.05
jitter = 0"""


def _trapping(name: str, version: str) -> bytes:
    text = plugin_wat(f"{name}@{version}")
    healthy = '(func (export "start") (result i32) i32.const 0)'
    trapping = '(func (export "start") (result i32) unreachable)'
    return make_signed_plugin(text.replace(healthy, trapping), manifest(name, version), KEY)


def _compliance(env: Env) -> dict[str, Any]:
    with ControlClient(env.socket, timeout=60) as client:
        return dict(client.request("GET", "/v1/compliance", query={"format": "json"}))


def test_review_due_overdue_reviewed_and_due_after_an_incident(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = Env(tmp_path)
    env.write_config(f"{RESTART}\n[staging]\nreview_interval_days = 30")
    drop(env.plugins, "hello.wasm", plugin("hello", "1.0.0"))
    clock = JumpClock()
    with in_process(env, clock=clock) as d:
        d.events.wait("plugin.installed", "hello")
        backend = d.daemon.backend
        first = backend.review_due()["hello"]
        assert first == pytest.approx(clock.wall() + 30 * DAY, abs=60)
        assert backend.reviews_overdue() == []
        clock.advance(31 * DAY)
        [overdue] = backend.reviews_overdue()
        assert (overdue["plugin"], overdue["last_review"], overdue["incidents"]) == (
            "hello", None, [],
        )  # fmt: skip
        assert [r["plugin"] for r in _compliance(env)["reviews_overdue"]] == ["hello"]

        code = main(["--socket", env.socket, "review", "hello", "--note", "Q3: deps, caps ok"])
        out = capsys.readouterr().out
        assert code == OK and out.startswith("reviewed hello 1.0.0; next review due ")
        [event] = d.events.wait("plugin.reviewed", "hello")
        assert (event.version, event.message) == ("1.0.0", "Q3: deps, caps ok")
        assert event.actor
        assert backend.reviews_overdue() == []
        assert backend.review_due()["hello"] == pytest.approx(clock.wall() + 30 * DAY, abs=60)

        # a major incident: a version that fails to start is rolled back / quarantined
        drop(env.plugins, "broken.wasm", _trapping("broken", "1.0.0"))
        d.events.wait("plugin.quarantined", "broken")
        due = backend.review_due()
        assert due["broken"] <= clock.wall()
        [row] = [r for r in backend.reviews_overdue() if r["plugin"] == "broken"]
        assert [i["event"] for i in row["incidents"]] == ["plugin.quarantined"]
        assert due["hello"] > clock.wall()  # the other plugin is not affected
        # a rollback is one too: hello 2.0.0 cannot start, 1.0.0 keeps serving
        drop(env.plugins, "hello.wasm", _trapping("hello", "2.0.0"))
        d.events.wait("plugin.rolled_back", "hello")
        assert d.invoke("hello") == b"hello@1.0.0:x"
        assert backend.review_due()["hello"] <= clock.wall()
        [row] = [r for r in backend.reviews_overdue() if r["plugin"] == "hello"]
        assert [(i["event"], i["version"]) for i in row["incidents"]] == [
            ("plugin.rolled_back", "2.0.0")
        ]
        # the compliance report, as an operator reads it: both overdue, with their incidents
        assert main(["--socket", env.socket, "compliance", "report", "--format", "md"]) == OK
        md = capsys.readouterr().out
        assert "## Reviews overdue (2)" in md, md
        section = md.split("## Reviews overdue (2)", 1)[1].split("\n## ", 1)[0]
        rows = {line.split("|")[1].strip(): line for line in section.splitlines()
                if line.startswith(("| hello ", "| broken "))}  # fmt: skip
        assert "plugin.rolled_back 2.0.0" in rows["hello"] and "never" not in rows["hello"]
        assert "plugin.quarantined 1.0.0" in rows["broken"] and "never" in rows["broken"]
        main(["--socket", env.socket, "review", "hello", "--note", "after the 2.0.0 rollback"])
        capsys.readouterr()
        assert backend.review_due()["hello"] > clock.wall()
    # the review book survives a restart of the daemon
    with in_process(env, clock=clock) as d:
        assert d.daemon.backend.review_due()["hello"] == pytest.approx(
            clock.wall() + 30 * DAY, abs=60
        )


def test_the_first_activations_of_a_start_are_saved_before_ready(tmp_path: Path) -> None:
    """The start holds the review book (one save for all its installs, issue 10 item 10);
    the book on disk has every plugin of the start by READY=1, and a later install is saved
    at once."""
    env = Env(tmp_path)
    for name in ("one", "two", "three"):
        drop(env.plugins, f"{name}.wasm", plugin(name, "1.0.0"))
    with in_process(env) as d:
        saved = json.loads((env.root / "state" / "reviews.json").read_text())
        assert {"one", "two", "three"} <= set(saved["plugins"])
        drop(env.plugins, "four.wasm", plugin("four", "1.0.0"))
        d.events.wait("plugin.installed", "four")
        saved = json.loads((env.root / "state" / "reviews.json").read_text())
        assert "four" in saved["plugins"]
