"""A reload (SIGHUP, ``forgeonectl reload``, ``systemctl reload``): what it puts in force, and an
honest account of it.

:func:`plan` says what the new configuration (and its trust, loaded first: a refusal changes
nothing) will change, so that ``daemon.reloaded`` is recorded before anything is applied (a
reload the audit log cannot record does not happen); :func:`apply_config` then puts every
key :class:`~forgeoned.daemon.config.Config` marks live in force: trust and mode, the
ceilings, the capability policy and ``plugin_env``, the control API's authorisation policy,
timers and the restart budget. After the rescan, :func:`restart_stale` restarts exactly the
running plugins whose capabilities the new policy changes (each a ``plugin.restarted`` event,
reason ``capabilities_changed``, with the caller as actor). :class:`ReloadReport` is the
account: the keys applied, the keys that wait for a restart (a warning in the journal), the
plugins restarted and the trusted keys now in force. It is the control API's answer, the
``daemon.reloaded`` event's details and the journal lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from forgeoned.core.lifecycle import State
from forgeoned.core.policy import Policy
from forgeoned.core.trust import TrustedKey, TrustPolicy
from forgeoned.daemon.config import Config
from forgeoned.daemon.config_diff import Change
from forgeoned.daemon.wiring import Parts
from forgeoned.errors import ForgeonedError

log = logging.getLogger("forgeoned")
CAPABILITIES_CHANGED = "capabilities_changed"
CONFIG_CHANGED = "config_changed"


@dataclass(frozen=True, slots=True)
class ReloadReport:
    applied: tuple[str, ...]  # changed keys now in force
    restart_required: tuple[str, ...]  # changed keys that wait for `systemctl restart`
    restarted: tuple[str, ...]  # plugins restarted for their new capabilities
    trusted: tuple[TrustedKey, ...]  # the trust store now in force
    keys_added: tuple[str, ...]
    keys_removed: tuple[str, ...]
    # plugins.conf.d files refused by this reload, "NAME: the one-line error" (kept config)
    config_refused: tuple[str, ...] = ()

    def event_details(self) -> dict[str, Any]:
        """The ``daemon.reloaded`` details: recorded before the restarts (each of which is a
        ``plugin.restarted`` event of its own)."""
        return {k: v for k, v in self.to_json().items() if k != "restarted"}

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": list(self.applied),
            "restart_required": list(self.restart_required),
            "restarted": list(self.restarted),
            "trusted_keys": [k.describe() for k in self.trusted],
            "keys_added": list(self.keys_added),
            "keys_removed": list(self.keys_removed),
            "config_refused": list(self.config_refused),
        }

    def summary(self) -> str:
        """One line: the ``daemon.reloaded`` event's message."""
        parts = [f"applied: {', '.join(self.applied) or 'no changed keys'}"]
        if self.restarted:
            parts.append(f"restarted for new capabilities: {', '.join(self.restarted)}")
        if self.restart_required:
            parts.append(f"applied only on restart: {', '.join(self.restart_required)}")
        parts.append(f"trusted keys: {_keys(self.trusted)}")
        return "; ".join(parts)

    def log(self) -> None:
        """The journal lines: the keys that wait for a restart at warning priority."""
        if self.restart_required:
            log.warning(
                "reload: changed, applied only on restart (systemctl restart forgeoned): %s",
                ", ".join(self.restart_required),
            )
        log.info("reload: applied: %s", ", ".join(self.applied) or "no changed keys")
        if self.restarted:
            log.info("reload: restarted for new capabilities or config: %s",
                     ", ".join(self.restarted))  # fmt: skip
        for refused in self.config_refused:
            log.error("reload: plugin config refused, the one in force kept: %s", refused)
        added = f"; added: {', '.join(self.keys_added)}" if self.keys_added else ""
        removed = f"; removed: {', '.join(self.keys_removed)}" if self.keys_removed else ""
        log.info("reload: trusted keys now: %s%s%s", _keys(self.trusted), added, removed)


def _keys(keys: tuple[TrustedKey, ...]) -> str:
    return ", ".join(f"{k.name} ({k.fingerprint})" for k in keys) or "none"


@dataclass(frozen=True, slots=True)
class Applied:
    """What :func:`apply_config` did, until the restarts complete the report."""

    changes: tuple[Change, ...]
    before: tuple[TrustedKey, ...]
    after: tuple[TrustedKey, ...]

    def report(self, restarted: list[str], config_refused: Sequence[str] = ()) -> ReloadReport:
        old, new = {k.name for k in self.before}, {k.name for k in self.after}
        return ReloadReport(
            applied=tuple(c.key for c in self.changes if c.live),
            restart_required=tuple(c.key for c in self.changes if not c.live),
            restarted=tuple(restarted),
            trusted=self.after,
            keys_added=tuple(sorted(new - old)),
            keys_removed=tuple(sorted(old - new)),
            config_refused=tuple(config_refused),
        )


def plan(parts: Parts, current: Config, new: Config, trust: TrustPolicy) -> Applied:
    """What putting ``new`` (with its loaded ``trust``) in force changes; nothing is applied
    yet, so that ``daemon.reloaded`` can be recorded first (fail closed on the audit log)."""
    return Applied(tuple(current.changes(new)), parts.verifier.trust.keys, trust.keys)


def apply_config(
    parts: Parts,
    current: Config,
    new: Config,
    trust: TrustPolicy,
    set_policy: Callable[[Policy], None],
) -> Config:
    """Put the live keys of ``new`` in force (``trust``: :func:`load_trust` of ``new``, loaded
    first so that a refused reload changes nothing); returns the configuration now in force."""
    config = current.reloaded(new)
    parts.verifier.reload(trust, config.mode, config.limits)
    if parts.verifier.attest is not None:
        parts.verifier.attest.policy = config.staging
    parts.services.config = config
    parts.chain.interval_s = config.audit_verify_interval_s
    parts.swapper.drain_timeout_s = config.drain_timeout_s
    parts.reconciler.restarts.policy = config.restart
    parts.directory.max_bytes = config.max_artifact_bytes
    set_policy(config.control.policy)
    return config


def restart_stale(parts: Parts, actor: str | None) -> tuple[list[str], list[str]]:
    """Restart the running plugins whose capabilities the policy in force changed, or whose
    ``plugins.conf.d`` file now gives another config (a refused file is audited, counted and
    reported; the plugin keeps the config in force); a plugin that is not running (paused,
    failed…) gets the new ones when it next starts. Returns (restarted, config refusals)."""
    names = parts.plugins.names()
    caps = set(parts.services.stale(names))
    configs, refused = parts.services.reconfigured(names)
    restarted = []
    for name in sorted(caps | set(configs)):
        reason = CAPABILITIES_CHANGED if name in caps else CONFIG_CHANGED
        what = reason.replace("_", " ")
        host = parts.plugins.get(name)
        if host is None or host.state is not State.RUNNING:
            log.info("reload: %s: %s, applied when it next starts", name, what)
            continue
        try:
            parts.reconciler.restart(name, actor, reason, f"restarted by a reload: {what}")
        except ForgeonedError as exc:
            log.warning("reload: could not restart %s (%s): %s", name, what, exc)
        else:
            restarted.append(name)
    return restarted, refused
