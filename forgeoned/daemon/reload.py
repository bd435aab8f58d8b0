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
``daemon.reloaded`` event's details and the journal lines. :class:`Reloader` runs these steps
on the daemon loop, between RELOADING=1 and READY=1, and holds the configuration in force.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.lifecycle import State
from forgeoned.core.policy import Policy
from forgeoned.core.trust import TrustedKey, TrustPolicy
from forgeoned.daemon.config import Config
from forgeoned.daemon.config_diff import Change
from forgeoned.daemon.config_file import load_config
from forgeoned.daemon.parts import Parts, status_line
from forgeoned.daemon.wiring import load_trust
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


class Reloader:
    """Runs a reload on the daemon loop and holds the configuration in force (a reload
    replaces it). ``rescan`` rescans plugins.d; ``set_policy`` hands the control API's
    authorisation policy to its server."""

    def __init__(
        self,
        parts: Parts,
        config: Config,
        rescan: Callable[[], None],
        set_policy: Callable[[Policy], None],
    ) -> None:
        self.parts = parts
        self.config = config
        self._rescan = rescan
        self._set_policy = set_policy

    def reload(self, actor: str | None = None) -> dict[str, Any]:
        """SIGHUP / ``forgeonectl reload``: the new config's live keys, trust and policies, a
        full rescan, the plugins whose capabilities changed restarted, READY=1 again; returns
        the :class:`~forgeoned.daemon.reload.ReloadReport` as JSON. A bad new config is
        refused (``daemon.reload_failed``, raised to the control caller) while the running
        configuration stays in force. ``daemon.reloaded`` (or ``daemon.reload_failed``) is
        written before anything is applied: a reload the audit log cannot record does not
        happen (AuditUnavailableError). READY=1 follows RELOADING=1 whatever raises, with the
        failure in its status line: systemd must not wait forever."""
        p = self.parts
        p.notifier.reloading(int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6))
        refused: ForgeonedError | None = None
        failed: BaseException | None = None
        answer: dict[str, Any] = {}
        try:
            new: tuple[Config, TrustPolicy] | None = None
            try:
                config = load_config(self.config.path)
                new = config, load_trust(config, p.audit)
            except ForgeonedError as exc:
                log.error("reload refused, keeping the running configuration: %s", exc)  # noqa: TRY400
                refused = exc
            p.trail.outage.guard(lambda: answer.update(self._reload(actor, refused, new)), "reload")
        except BaseException as exc:
            failed = exc
            raise
        finally:
            status = status_line(p)
            why = failed or refused
            p.notifier.ready(status if why is None else f"{status}; reload failed: {why}")
        if refused is not None:
            raise refused
        return answer

    def _reload(
        self,
        actor: str | None,
        refused: ForgeonedError | None,
        new: tuple[Config, TrustPolicy] | None,
    ) -> dict[str, Any]:
        p = self.parts
        applied = plan(p, self.config, *new) if new is not None else None
        if applied is None:
            reason = refused.code if refused is not None else None
            p.audit.record(AuditEvent(EventName.DAEMON_RELOAD_FAILED, actor=actor,
                                      reason=reason, message=str(refused or "")))  # fmt: skip
        else:
            planned = applied.report([])
            p.audit.record(AuditEvent(EventName.DAEMON_RELOADED, actor=actor,
                                      message=planned.summary(),
                                      details=planned.event_details()))  # fmt: skip
        if new is not None:
            self.config = apply_config(p, self.config, *new, self._set_policy)
            p.directory.clear()  # re-verify every file against the new trust and ceilings
            p.operations.withdraw_untrusted(p.source.recheck)
        # (a refused reload keeps the trust in force: the files it judged stay judged, and a
        # bad file is not reported again for a reload that changed nothing)
        self._rescan()
        if applied is None:
            return {}
        report = applied.report(*restart_stale(p, actor))
        report.log()
        return report.to_json()

    def trust_changed(self) -> None:
        """The trust dir changed (``trust_watch``): reload as ``forgeonectl reload`` would;
        a refused reload keeps the running trust and is audited (daemon.reload_failed)."""
        try:
            self.reload("trust-dir-watcher")
        except ForgeonedError as exc:
            log.warning("trust dir changed; reload refused: %s", exc)
