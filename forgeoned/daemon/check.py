"""``forgeoned --check-config [PATH]`` and ``forgeonectl config check [PATH]``: everything a
start or a reload would check, without touching a running daemon.

The file is parsed and validated key by key (:func:`~forgeoned.daemon.config_file.load_config`),
the config file, trust store and credentials directory pass StrictModes as the daemon's user
would see them (owned by root or by that user; in development mode only warned about), the
trusted keys load with their ``[trust]`` scopes and expiry dates, the ``[control]`` policy
resolves (roles, bindings, rules) and its socket group exists. Nothing is audited and nothing
is sent to the daemon: a check is a dry run, so it can run before every reload.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from forgeoned.adapters.crypto.keys import load_trust_dir
from forgeoned.adapters.files.strict_modes import check_trusted_inputs, judge
from forgeoned.core.trust import TrustPolicy
from forgeoned.daemon.config import Config
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.host_services import credentials_dir
from forgeoned.errors import ConfigError, ForgeonedError, InsecurePathError

DEFAULT_CONFIG: Final = Path("/etc/forgeoned/forgeoned.toml")
DAEMON_USER: Final = "forgeoned"
LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EX_CONFIG: Final = 78  # sysexits: a configuration error; RestartPreventExitStatus= in the unit


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The daemon's command line (``forgeoned(8)``)."""
    parser = argparse.ArgumentParser(prog="forgeoned", description="forgeoned plugin daemon")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--check-config", nargs="?", const=True, default=None, metavar="PATH",
        help="check PATH (default: --config, else /etc/forgeoned/forgeoned.toml) as a start "
        "would, print a summary and exit (0: fine, 78: refused); touches no running daemon",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", type=str.upper, choices=LEVELS,
        default=os.environ.get("FORGEONED_LOG_LEVEL", "INFO").upper(),
        help="the daemon's own log records below this are dropped (%(default)s; "
        "$FORGEONED_LOG_LEVEL)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.config is None and args.check_config is None:
        parser.error("--config PATH is required")
    return args


def run_check(path: Path) -> int:
    """``--check-config``: the summary on stdout and 0, or one line on stderr and 78."""
    try:
        result = check_config(path)
    except ForgeonedError as exc:
        print(f"forgeoned: {exc}", file=sys.stderr)
        return EX_CONFIG
    print("\n".join(result.lines()))
    return 0


@dataclass(frozen=True, slots=True)
class CheckResult:
    config: Config
    trust: TrustPolicy
    warnings: tuple[str, ...]  # development mode: what production would refuse

    def lines(self) -> list[str]:
        c = self.config
        keys = ", ".join(
            f"{k.name} {k.fingerprint} (scopes {' '.join(k.scopes)}"
            + (f", expires {k.describe()['not_after']})" if k.not_after is not None else ")")
            for k in self.trust.keys
        )
        grants = ", ".join(g.name for g in c.control.policy.grants)
        root = "root is admin" if c.control.policy.root_is_admin else "root holds no role"
        out = [
            f"{c.path}: configuration OK",
            f"mode: {c.mode.value}",
            f"trusted keys ({len(self.trust.keys)}): {keys or 'none: every plugin is refused'}",
            f"control: {'on ' + c.control.socket if c.control_enabled else 'off'}; {root}; "
            f"grants: {grants or 'none'}",
            f"metrics: {c.metrics_listen if c.metrics_enabled else 'off'}",
        ]
        return out + [f"warning: {w}" for w in self.warnings]


def daemon_owners() -> frozenset[int]:
    """Who may own trusted files, as the daemon sees it: root, the user running this check,
    and the daemon's own user (``forgeoned``) when it exists."""
    owners = {0, os.geteuid()}
    with contextlib.suppress(KeyError):
        owners.add(pwd.getpwnam(DAEMON_USER).pw_uid)
    return frozenset(owners)


def check_config(path: Path, owners: frozenset[int] | None = None) -> CheckResult:
    """Raise :class:`ConfigError` (or :class:`InsecurePathError`) naming the first problem a
    start would meet; otherwise what the daemon would run with."""
    config = load_config(path)
    found = check_trusted_inputs(
        config.path,
        config.trust_dir,
        credentials_dir(config),
        owners or daemon_owners(),
        plugin_config_dir=config.plugin_config_dir,
    )
    verdict = judge(found, development=config.development)
    warnings: tuple[str, ...] = ()
    if verdict is not None:
        refuse, message = verdict
        if refuse:
            raise InsecurePathError(message)
        warnings = (message,)
    trust = load_trust_dir(config.trust_dir, config.trust)
    group = config.control.group
    if config.control_enabled and group and not group.isdigit():
        try:
            grp.getgrnam(group)
        except KeyError:
            raise ConfigError(f"{path}: control.group: no such group {group!r}") from None
    return CheckResult(config, trust, warnings)
