"""Config loading: defaults, path resolution, and one-line errors for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeoned.core.control_config import ControlConfig
from forgeoned.core.trust import Mode, TrustPolicyConfig
from forgeoned.daemon.config import DEFAULT_POLICY
from forgeoned.daemon.config_file import load_config, parse_config
from forgeoned.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "etc").mkdir(exist_ok=True)
    path = tmp_path / "etc" / "forgeoned.toml"
    path.write_text(text)
    return path


def test_empty_file_gives_the_documented_production_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.mode is Mode.PRODUCTION and not cfg.development
    assert cfg.plugins_dir == Path("/etc/forgeoned/plugins.d")
    assert cfg.state_dir == Path("/var/lib/forgeoned")
    assert cfg.trust_dir == Path("/etc/forgeoned/trusted.d")
    assert cfg.metrics_listen == "127.0.0.1:9464"
    assert cfg.restart.max_failures == 5
    assert cfg.effective_audit_dir == Path("/var/lib/forgeoned/audit")
    assert cfg.policy_for("anything") == DEFAULT_POLICY
    assert cfg.audit_verify_interval_s == 600.0


def test_relative_paths_resolve_against_the_parent_of_the_config_directory(
    tmp_path: Path,
) -> None:
    cfg = load_config(write(tmp_path, 'plugins_dir = "plugins.d"\nstate_dir = "/abs/state"'))
    assert cfg.plugins_dir == tmp_path.resolve() / "plugins.d"
    assert cfg.state_dir == Path("/abs/state")
    assert cfg.resolve("run/control.sock") == tmp_path.resolve() / "run/control.sock"


def test_base_dir_overrides_the_anchor(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'base_dir = "/srv/fg"\nplugins_dir = "p"'))
    assert cfg.plugins_dir == Path("/srv/fg/p")


def test_shipped_configs_load() -> None:
    prod = load_config(REPO / "etc/forgeoned.toml")
    dev = load_config(REPO / "etc/forgeoned.dev.toml")
    assert prod.mode is Mode.PRODUCTION and prod.plugins_dir == Path("/etc/forgeoned/plugins.d")
    assert dev.development
    assert dev.plugins_dir == REPO / "plugins.d"
    assert dev.state_dir == REPO / "var/state"
    assert dev.cache_dir == REPO / "var/cache"
    assert dev.trust_dir == REPO / "dev-keys"
    assert dev.control.socket == str(REPO / "var/run/control.sock")


def test_capability_policies_per_plugin(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
[capabilities.default]
log = true
[capabilities.billing]
log = true
secrets = ["api-token"]
kv = { quota_bytes = 4096 }
""",
        )
    )
    assert cfg.policy_for("other").log and not cfg.policy_for("other").clock
    billing = cfg.policy_for("billing")
    assert billing.secrets == frozenset({"api-token"}) and billing.kv_quota_bytes == 4096


def test_trust_and_control_tables_are_stored_typed(tmp_path: Path) -> None:
    key = "ab" * 32
    text = f'[trust]\nrevoked = ["{key}"]\n[trust.thresholds]\npay = 2\n'
    text += '[control]\nsocket = "run/x.sock"\nmax_connections = 9\n'
    cfg = load_config(write(tmp_path, text))
    assert cfg.trust == TrustPolicyConfig(
        revoked=frozenset({bytes.fromhex(key)}), thresholds={"pay": 2}
    )
    assert isinstance(cfg.control, ControlConfig) and cfg.control.max_connections == 9
    assert cfg.control.socket == str(tmp_path.resolve() / "run/x.sock")  # resolved once, here
    assert cfg.control_enabled


def test_control_can_be_disabled(tmp_path: Path) -> None:
    assert not load_config(write(tmp_path, "[control]\nenabled = false")).control_enabled


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("plugin_dir = 'x'", "plugin_dir: unknown key"),
        ("mode = 'testing'", "mode: must be one of production, development, staging"),
        ("drain_timeout_s = 'soon'", "drain_timeout_s: must be a number"),
        ("drain_timeout_s = -1", "drain_timeout_s: -1 is outside"),
        ("debounce_ms = 1.5", "debounce_ms: must be an integer"),
        ("[restart]\nmax_failures = 0", "restart.max_failures: 0 is outside 1..10000"),
        ("[restart]\nbackoff_initial_s = 5\nbackoff_max_s = 1", "restart.backoff_max_s"),
        ("[restart]\ntries = 3", "restart.tries: unknown key"),
        ("[compile]\nworkers = 0", "compile.workers"),
        ("[compile]\ncache_max_bytes = -1", "compile.cache_max_bytes: -1 is outside"),
        ("[metrics]\nlisten = 'nowhere'", "metrics.listen: must be HOST:PORT"),
        ("[metrics]\nenabled = 'yes'", "metrics.enabled: must be true or false"),
        ("[audit]\ncolour = 1", "audit.colour: unknown key"),
        ("[audit]\nverify_interval_s = -5", "audit.verify_interval_s: -5 is outside"),
        ("[audit]\nverify_interval_s = 'hourly'", "audit.verify_interval_s: must be a number"),
        ("plugin_env = 'TZ'", "plugin_env: must be a list"),
        ("[capabilities.x]\nlog = 'yes'", "capabilities.x"),
        ("compile = 3", "compile: must be a table"),
        ("plugins_dir = 7", "plugins_dir: must be a non-empty path string"),
        ("[control]\nsockett = 'x'", "control: unknown key(s) sockett"),
        ("[trust]\nrevoked = ['nothex']", "trust.revoked"),
        ("[control]\nenabled = 'no'", "control.enabled: must be true or false"),
        ("[limits]\nmemory = 5", "limits.memory: unknown key"),
        ("[limits]\ninstances = 0", "limits.instances: 0 is outside 1..64"),
        ("[limits]\nfuel_per_call = 'lots'", "limits.fuel_per_call: must be an integer"),
        ("[limits.plugins.Bad]\ninstances = 1", "limits.plugins.Bad: not a plugin name"),
        ("[limits.plugins.x]\ncode = 1", "limits.plugins.x.code: unknown key"),
        ("[limits]\nplugins = 3", "limits.plugins: must be a table"),
    ],
)
def test_bad_values_are_one_line_errors_naming_file_and_key(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert fragment in message
    assert str(path) in message
    assert "\n" not in message
    assert path.read_bytes() == before  # loading never rewrites the file


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "mode = "))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_parse_config_accepts_a_decoded_document(tmp_path: Path) -> None:
    cfg = parse_config({"mode": "development", "restart": {"window_s": 30}}, tmp_path / "c.toml")
    assert cfg.development and cfg.restart.window_s == 30.0
