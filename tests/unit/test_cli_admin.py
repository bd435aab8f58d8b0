"""The administrator's offline tools (issue 17, item 5): ``config check`` / ``forgeoned
--check-config``, ``keys list --trust/--config`` and ``keys show``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgeoned.adapters.crypto.keys import generate_keypair, public_key_pem
from forgeoned.cli import main
from forgeoned.cli.devtools import test_key
from forgeoned.core.trust import fingerprint
from forgeoned.daemon.check import EX_CONFIG, parse_args, run_check

OPS = test_key(3)


def layout(tmp_path: Path, extra: str = "") -> Path:
    """A checkout-like layout: etc/forgeoned.toml, trusted.d with ops.pub (0644, ours)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "trusted.d").mkdir()
    (tmp_path / "trusted.d/ops.pem").write_bytes(public_key_pem(OPS.public_key))
    config = tmp_path / "etc/forgeoned.toml"
    config.write_text(
        f'plugins_dir = "plugins.d"\nstate_dir = "state"\ntrust_dir = "trusted.d"\n'
        f'cache_dir = "cache"\n{extra}\n[control]\nsocket = "run/c.sock"\ngroup = ""\n'
    )
    return config


def test_config_check_summarises_what_a_start_would_run_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = layout(
        tmp_path,
        '[trust.expires]\nops = 2030-01-01T00:00:00Z\n[[control.bindings]]\ngroup = "ops"\n'
        'roles = ["operator"]',
    )
    assert main(["config", "check", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{config}: configuration OK"
    assert out[1] == "mode: production"
    assert out[2] == (
        f"trusted keys (1): ops {fingerprint(OPS.public_key)} (scopes *, "
        "expires 2030-01-01T00:00:00Z)"
    )
    assert "grants: binding:group=ops" in out[3]
    # A dry run: nothing of the daemon's state was created.
    assert not (tmp_path / "state").exists() and not (tmp_path / "plugins.d").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("bogus_key = 1", "bogus_key: unknown key"),
        ('[[control.bindings]]\ngroup = "ops"\nroles = ["nope"]', "unknown role 'nope'"),
        ('[trust.scopes]\nmissing = ["*"]', "names key 'missing', not found"),
        ('[metrics]\nlisten = "127.0.0.1:99999"', "port 0..65535"),
    ],
)
def test_config_check_names_what_a_start_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, message: str
) -> None:
    config = layout(tmp_path, extra)
    assert main(["config", "check", str(config)]) != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert run_check(config) == EX_CONFIG  # forgeoned --check-config: the same verdict


def test_config_check_applies_strict_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = layout(tmp_path)
    key = tmp_path / "trusted.d/ops.pem"
    key.chmod(0o666)
    assert main(["config", "check", str(config)]) != 0
    assert f"chmod go-w {key}" in capsys.readouterr().err
    config.write_text('mode = "development"\n' + config.read_text())
    assert main(["config", "check", str(config)]) == 0  # development mode: a warning only
    assert "warning: INSECURE (development mode)" in capsys.readouterr().out


def test_forgeoned_check_config_takes_a_path_or_the_config_option(tmp_path: Path) -> None:
    args = parse_args(["--check-config", "/x.toml"])
    assert args.check_config == "/x.toml"
    args = parse_args(["--config", "/y.toml", "--check-config"])
    assert args.check_config is True and args.config == Path("/y.toml")
    assert parse_args(["--config", "/y.toml", "--log-level", "debug"]).log_level == "DEBUG"
    with pytest.raises(SystemExit):
        parse_args([])
    with pytest.raises(SystemExit):
        parse_args(["--config", "/y.toml", "--log-level", "loud"])


def test_keys_show_describes_public_pem_and_secret_key_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret, public = generate_keypair(tmp_path, "ops")
    pem = tmp_path / "ops2.pem"
    described = []
    for path in (public, secret):
        assert main(["keys", "show", "--json", str(path)]) == 0
        described.append(json.loads(capsys.readouterr().out))
    assert described[0]["public_key"] == described[1]["public_key"]
    assert described[0]["format"] == "public key (wasmsign2 raw)"
    assert described[1]["format"] == "secret key (wasmsign2): its public half"
    pem.write_bytes(public_key_pem(bytes.fromhex(described[0]["public_key"])))
    assert main(["keys", "show", str(pem)]) == 0
    text = capsys.readouterr().out
    assert f"fingerprint:  {described[0]['fingerprint']}" in text
    assert "format:       public key (SPKI PEM)" in text
    assert secret.read_bytes()[1:33].hex() not in json.dumps(described)  # never the seed


def test_keys_list_offline_from_a_trust_dir_or_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = layout(tmp_path, '[trust.scopes]\nops = ["billing-*"]')
    assert main(["keys", "list", "--trust", str(tmp_path / "trusted.d")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "KEY_ID", "FINGERPRINT", "SCOPES", "EXPIRES"]
    assert lines[1].split()[0] == "ops" and lines[1].split()[-2:] == ["*", "never"]
    assert main(["keys", "list", "--config", str(config), "--json"]) == 0
    [key] = json.loads(capsys.readouterr().out)["keys"]
    assert key["scopes"] == ["billing-*"] and key["public_key"] == OPS.public_key.hex()


def test_a_bad_key_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.pub").write_bytes(b"nonsense")
    assert main(["keys", "show", str(tmp_path / "bad.pub")]) == 1
    assert "not a public key" in capsys.readouterr().err
