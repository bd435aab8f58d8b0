"""What a reload applies: the fields marked live in Config, and a list of the rest."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from forgeoned.core.ceilings import Ceilings
from forgeoned.core.trust import Mode
from forgeoned.daemon.config import Config
from forgeoned.daemon.config_file import load_config


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "etc").mkdir(exist_ok=True)
    path = tmp_path / "etc" / "forgeoned.toml"
    path.write_text(text)
    return path


LIVE_TEXT = """
mode = "development"
drain_timeout_s = 1.5
lifecycle_timeout_s = 0.5
rescan_interval_s = 7
plugin_env = ["TZ"]
[restart]
max_failures = 2
[capabilities.billing]
log = true
[trust.thresholds]
pay = 2
[limits]
instances = 2
[audit]
verify_interval_s = 5
[[control.bindings]]
group = "ops"
roles = ["operator"]
"""

RESTART_TEXT = """
plugins_dir = "other-plugins"
debounce_ms = 99
[compile]
workers = 3
[control]
socket = "run/other.sock"
[metrics]
listen = "127.0.0.1:1"
[audit]
journald = false
"""


def test_the_live_keys_are_applied_and_nothing_waits_for_a_restart(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, ""))
    new = load_config(write(tmp_path, LIVE_TEXT))
    assert old.restart_required(new) == []
    applied = old.reloaded(new)
    assert applied == new
    assert applied.mode is Mode.DEVELOPMENT and applied.drain_timeout_s == 1.5
    assert applied.lifecycle_timeout_s == 0.5
    assert applied.limits.default == Ceilings(instances=2)
    assert applied.trust.thresholds == {"pay": 2} and applied.plugin_env == ("TZ",)
    assert applied.policy_for("billing").log and not applied.policy_for("billing").clock
    assert [g.name for g in applied.control.policy.grants] == ["binding:group=ops"]
    assert [c.key for c in old.changes(new)] == [
        "audit.verify_interval_s",
        "capabilities.billing",
        "control.policy",
        "drain_timeout_s",
        "lifecycle_timeout_s",
        "limits",
        "mode",
        "plugin_env",
        "rescan_interval_s",
        "restart",
        "trust",
    ]


def test_control_policy_applies_while_the_socket_waits_for_a_restart(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, ""))
    new = load_config(
        write(
            tmp_path,
            '[control]\nmode = "0600"\n[[control.bindings]]\nuser = "a"\nroles = ["viewer"]',
        )
    )
    applied = old.reloaded(new)
    assert applied.control.policy == new.control.policy
    assert applied.control.mode == old.control.mode == 0o660
    assert old.restart_required(new) == ["control.mode"]


def test_restart_keys_are_named_as_written_and_kept(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, ""))
    new = load_config(write(tmp_path, RESTART_TEXT))
    assert old.restart_required(new) == [
        "audit.journald",
        "compile.workers",
        "control.socket",
        "debounce_ms",
        "metrics.listen",
        "plugins_dir",
    ]
    assert old.reloaded(new) == old  # none of them is applied


def test_a_mixed_change_applies_one_half_and_names_the_other(tmp_path: Path) -> None:
    old = load_config(write(tmp_path, ""))
    new = load_config(write(tmp_path, "drain_timeout_s = 3\ndebounce_ms = 7"))
    applied = old.reloaded(new)
    assert (applied.drain_timeout_s, applied.debounce_ms) == (3.0, old.debounce_ms)
    assert old.restart_required(new) == ["debounce_ms"]


def test_every_field_is_live_or_named_for_restart() -> None:
    # Marking is the one place to decide; both sets together are every field but the path.
    base = Config(path=Path("/c.toml"))
    live = {f.name for f in fields(Config) if f.metadata.get("live")}
    assert live == {
        "mode",
        "trust_dir",
        "plugin_env",
        "plugin_config_dir",
        "drain_timeout_s",
        "shutdown_timeout_s",
        "max_artifact_bytes",
        "lifecycle_timeout_s",
        "rescan_interval_s",
        "restart",
        "default_policy",
        "plugin_policies",
        "trust",
        "limits",
        "http",
        "staging",
        "audit_verify_interval_s",
    }
    assert base.restart_required(base) == []
