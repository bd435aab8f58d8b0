"""The shipped systemd files, checked offline with systemd's own tools.

`systemd-analyze security --offline=yes` scores the sandbox, `systemd-analyze verify` parses the
unit against a scratch root that holds the host's units plus the two executables the unit
names, and `systemd-sysusers` / `systemd-tmpfiles` apply our sysusers.d and tmpfiles.d files to
a scratch root. Each tool's verdict is the assertion; nothing is parsed by hand except the
score line and the unit's own key list.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
UNIT = SYSTEMD_DIR / "forgeoned.service"
GENERATOR = SYSTEMD_DIR / "forgeoned-credentials.generator"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _unit_settings(path: Path) -> dict[str, list[str]]:
    """Key -> every value it is given in the unit file (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _exposure(unit: Path) -> tuple[float, str]:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, f"no exposure score in systemd-analyze output:\n{output}"
    return float(match.group(1)), output


@needs_analyze
def test_exposure_is_at_most_two() -> None:
    score, output = _exposure(UNIT)
    assert score <= MAX_EXPOSURE, output


@needs_analyze
def test_the_score_notices_a_weaker_sandbox(tmp_path: Path) -> None:
    """The score is real: dropping the sandbox lines makes it worse than ours."""
    ours, _ = _exposure(UNIT)
    weak = tmp_path / "forgeoned.service"
    kept = [
        line
        for line in UNIT.read_text().splitlines()
        if not line.startswith(("Protect", "Private", "Restrict", "SystemCall", "Capability"))
    ]
    weak.write_text("\n".join(kept) + "\n")
    weaker, _ = _exposure(weak)
    assert weaker > ours
    assert weaker > MAX_EXPOSURE


def _verify_root(tmp_path: Path, unit_text: str) -> Path:
    root = tmp_path / "root"
    units = root / "usr/lib/systemd/system"
    shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    (units / "forgeoned.service").write_text(unit_text)
    (root / "etc").mkdir()
    for name in ("forgeoned", "forgeonectl"):
        exe = root / "usr/bin" / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return root


def _verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "forgeoned.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_analyze
def test_unit_verifies_without_a_single_warning(tmp_path: Path) -> None:
    proc = _verify(_verify_root(tmp_path, UNIT.read_text()))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout + proc.stderr == ""


@needs_analyze
def test_verify_would_catch_a_bad_setting(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("WatchdogSec=30s", "WatchdogSec=soon")
    proc = _verify(_verify_root(tmp_path, broken))
    assert "WatchdogSec" in proc.stderr or "sec value" in proc.stderr


def test_unit_has_the_contract_settings() -> None:
    s = _unit_settings(UNIT)
    assert s["Type"] == ["notify"]
    assert s["ExecStart"] == ["/usr/bin/forgeoned --config /etc/forgeoned/forgeoned.toml"]
    # Reload must block until done: systemd 252 has no notify-reload, kill -HUP returns early.
    assert len(s["ExecReload"]) == 1
    assert "forgeonectl" in s["ExecReload"][0]
    assert s["ExecReload"][0].endswith(" reload")
    assert s["Restart"] == ["on-failure"]
    assert s["User"] == ["forgeoned"]
    for key in ("StateDirectory", "RuntimeDirectory", "CacheDirectory", "ConfigurationDirectory"):
        assert s[key] == ["forgeoned"], key
    assert s["WatchdogSec"] and s["MemoryMax"] and s["TasksMax"]
    # wasmtime needs writable+executable mappings and large virtual reservations.
    assert "MemoryDenyWriteExecute" not in s
    assert "LimitAS" not in s
    # SO_PEERCRED must see real uids, so no private user namespace.
    assert s.get("PrivateUsers", ["no"]) == ["no"]


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "min": 60.0}
    match = re.fullmatch(r"(\d+)(ms|s|min)", value)
    assert match, f"unexpected time span {value!r}"
    return int(match.group(1)) * units[match.group(2)]


def test_stop_timeout_outlasts_the_daemons_shutdown_bound() -> None:
    """TimeoutStopSec must leave the daemon time to drain and stop before systemd's SIGKILL."""
    config = tomllib.loads((REPO / "etc/forgeoned.toml").read_text())
    stop = _seconds(_unit_settings(UNIT)["TimeoutStopSec"][0])
    shutdown = float(config["shutdown_timeout_s"])
    drain = float(config["drain_timeout_s"])
    assert stop >= shutdown + drain + 30, (stop, shutdown, drain)


def test_production_config_matches_the_unit_directories() -> None:
    config = tomllib.loads((REPO / "etc/forgeoned.toml").read_text())
    assert config["mode"] == "production"
    assert config["plugins_dir"] == "/etc/forgeoned/plugins.d"
    assert config["trust_dir"] == "/etc/forgeoned/trusted.d"
    assert config["state_dir"] == "/var/lib/forgeoned"  # StateDirectory=forgeoned
    assert config["cache_dir"] == "/var/cache/forgeoned"  # CacheDirectory=forgeoned
    assert config["control"]["socket"] == "/run/forgeoned/control.sock"  # RuntimeDirectory=
    assert config["control"]["group"] == "forgeoned"  # the sysusers.d group
    assert f"--socket {config['control']['socket']}" in _unit_settings(UNIT)["ExecReload"][0]


def _sysusers(root: Path) -> None:
    (root / "etc").mkdir(exist_ok=True)
    proc = subprocess.run(
        ["systemd-sysusers", f"--root={root}", str(SYSTEMD_DIR / "forgeoned.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _entry(path: Path, name: str) -> list[str]:
    return next(
        line.split(":") for line in path.read_text().splitlines() if line.startswith(f"{name}:")
    )


needs_sysusers = pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers/systemd-tmpfiles are not installed",
)


@needs_sysusers
def test_sysusers_creates_a_locked_system_account(tmp_path: Path) -> None:
    _sysusers(tmp_path)
    user = _entry(tmp_path / "etc/passwd", "forgeoned")
    assert int(user[2]) < 1000, "a system uid"
    assert user[5] == "/var/lib/forgeoned"
    assert user[6] == "/usr/sbin/nologin"
    assert _entry(tmp_path / "etc/group", "forgeoned")[2] == user[3]


@needs_sysusers
def test_tmpfiles_creates_the_config_directories(tmp_path: Path) -> None:
    _sysusers(tmp_path)
    proc = subprocess.run(
        [
            "systemd-tmpfiles",
            f"--root={tmp_path}",
            "--create",
            str(SYSTEMD_DIR / "forgeoned.tmpfiles"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    base = tmp_path / "etc/forgeoned"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in base.iterdir()}
    # plugins.d: writable by the daemon's user (and root) only, not by the socket group.
    assert modes == {
        "plugins.d": 0o755, "trusted.d": 0o755, "plugins.conf.d": 0o755, "credentials": 0o700,
    }  # fmt: skip
    uid = int(_entry(tmp_path / "etc/passwd", "forgeoned")[2])
    assert (base / "plugins.d").stat().st_uid == uid
    assert (base / "trusted.d").stat().st_uid == 0
    assert (base / "plugins.conf.d").stat().st_uid == 0  # root only, like trusted.d
    assert (base / "credentials").stat().st_uid == 0


def _generate(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(GENERATOR), str(out), str(out), str(out)],
        env={"PATH": "/usr/bin:/bin", "FORGEONED_CREDENTIALS_SRC": str(source)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_generator_loads_each_secret_file_under_its_own_name(tmp_path: Path) -> None:
    source = tmp_path / "credentials"
    source.mkdir()
    (source / "api-token").write_text("t")
    (source / "db.password").write_text("p")
    # Not secrets the daemon could ask for: skipped, never passed on.
    (source / ".hidden").write_text("h")
    (source / "has space").write_text("s")
    (source / "sub").mkdir()
    (source / "link").symlink_to(source / "api-token")
    proc = _generate(source, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    dropin = (tmp_path / "out/forgeoned.service.d/50-credentials.conf").read_text()
    lines = [line for line in dropin.splitlines() if line.startswith("LoadCredential=")]
    assert sorted(lines) == [
        f"LoadCredential=api-token:{source}/api-token",
        f"LoadCredential=db.password:{source}/db.password",
    ]
    assert "[Service]" in dropin


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_generator_writes_nothing_without_secrets(tmp_path: Path, state: str) -> None:
    source = tmp_path / "credentials"
    if state == "empty":
        source.mkdir()
    proc = _generate(source, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_generator_refuses_to_run_without_an_output_directory() -> None:
    proc = subprocess.run([str(GENERATOR)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage:")


@needs_analyze
def test_generated_drop_in_verifies_with_the_unit(tmp_path: Path) -> None:
    root = _verify_root(tmp_path, UNIT.read_text())
    source = root / "etc/forgeoned/credentials"
    source.mkdir(parents=True)
    (source / "api-token").write_text("t")
    proc = _generate(source, root / "etc/systemd/system")
    assert proc.returncode == 0, proc.stderr
    text = (root / "etc/systemd/system/forgeoned.service.d/50-credentials.conf").read_text()
    assert str(source) in text
    checked = _verify(root)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout + checked.stderr == ""
