"""The daemon's configuration as a typed record: every key and its default.

:class:`Config` is what :func:`~forgeoned.daemon.config_file.load_config` builds from the TOML
file (strictly validated there; DESIGN.md section 4 fixes the core keys, the rest are
documented in ``etc/forgeoned.toml``) and what every part of the daemon reads.

Every table is kept typed (``mode`` a :class:`Mode`, ``[control]`` a :class:`ControlConfig`
with its socket resolved, ``[trust]`` a :class:`TrustPolicyConfig`, ``[limits]`` a
:class:`CeilingPolicy`). A field that a reload applies live is marked once, with
``metadata=LIVE`` (see :mod:`forgeoned.daemon.config_diff`); :meth:`Config.changes`,
:meth:`Config.reloaded` and :meth:`Config.restart_required` are built from that mark, so a
new live key is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from forgeoned.core.ceilings import CeilingPolicy
from forgeoned.core.control_config import ControlConfig
from forgeoned.core.http_grant import HttpPolicy
from forgeoned.core.manifest import Capabilities
from forgeoned.core.sources import SourceConfig
from forgeoned.core.staging_policy import StagingPolicy
from forgeoned.core.supervisor import RestartPolicy
from forgeoned.core.trust import Mode, TrustPolicyConfig
from forgeoned.core.wasm_sections import MAX_MODULE_BYTES
from forgeoned.daemon.config_diff import LIVE, TABLE, Change, differences, key, merged

# What a plugin gets when the operator wrote no [capabilities] policy for it: the harmless
# capabilities, a small kv store, and no secrets (those are always granted by name).
DEFAULT_POLICY: Final = Capabilities(
    log=True, clock=True, random=True, kv_quota_bytes=1 << 20, metrics=True
)


@dataclass(frozen=True, slots=True)
class CompileLimits:
    """Limits of the worker process that compiles untrusted WebAssembly to machine code."""

    workers: int = 2
    cpu_seconds: int = 30
    memory_bytes: int = 2 << 30
    timeout_s: float = 60.0
    cache_max_bytes: int = 512 << 20  # the compile cache; entries in use are never evicted


@dataclass(frozen=True, slots=True)
class Config:
    path: Path  # the file a reload reads again
    base_dir: Path = Path("/")
    mode: Mode = field(default=Mode.PRODUCTION, metadata=LIVE)
    plugins_dir: Path = Path("/etc/forgeoned/plugins.d")
    state_dir: Path = Path("/var/lib/forgeoned")
    trust_dir: Path = field(default=Path("/etc/forgeoned/trusted.d"), metadata=LIVE)
    cache_dir: Path = Path("/var/cache/forgeoned")
    credentials_dir: Path | None = None  # None: $CREDENTIALS_DIRECTORY from systemd
    plugin_env: tuple[str, ...] = field(default=(), metadata=LIVE)
    # one NAME.toml per plugin (docs/plugin-hooks.md); a reload re-reads them
    plugin_config_dir: Path = field(default=Path("/etc/forgeoned/plugins.conf.d"), metadata=LIVE)
    drain_timeout_s: float = field(default=5.0, metadata=LIVE)
    # each stop/unload/start/pause/resume call of a plugin (after a drain), at most
    lifecycle_timeout_s: float = field(default=5.0, metadata=LIVE)
    call_hold_timeout_s: float = 30.0
    shutdown_timeout_s: float = field(default=20.0, metadata=LIVE)
    rescan_interval_s: float = field(default=60.0, metadata=LIVE)
    debounce_ms: int = 50
    max_artifact_bytes: int = field(default=MAX_MODULE_BYTES, metadata=LIVE)
    compile: CompileLimits = field(default_factory=CompileLimits, metadata=TABLE)
    restart: RestartPolicy = field(default_factory=RestartPolicy, metadata=LIVE)
    default_policy: Capabilities = field(
        default=DEFAULT_POLICY, metadata=key("capabilities.default", live=True)
    )
    plugin_policies: dict[str, Capabilities] = field(
        default_factory=dict, metadata=key("capabilities", live=True)
    )
    trust: TrustPolicyConfig = field(default_factory=TrustPolicyConfig, metadata=LIVE)
    control_enabled: bool = field(default=True, metadata=key("control.enabled"))
    # socket resolved; its policy (roles, bindings, rules) is live, the rest is not
    control: ControlConfig = field(default_factory=ControlConfig, metadata=TABLE)
    limits: CeilingPolicy = field(default_factory=CeilingPolicy, metadata=LIVE)
    # outbound HTTP grants (core/http_grant.py); a change restarts the plugins it concerns
    http: HttpPolicy = field(default_factory=HttpPolicy, metadata=LIVE)
    staging: StagingPolicy = field(default_factory=StagingPolicy, metadata=LIVE)
    metrics_listen: str = field(default="127.0.0.1:9464", metadata=key("metrics.listen"))
    metrics_enabled: bool = field(default=True, metadata=key("metrics.enabled"))
    audit_dir: Path | None = field(default=None, metadata=key("audit.dir"))  # None: STATE/audit
    audit_journald: bool = field(default=True, metadata=key("audit.journald"))
    audit_verify_interval_s: float = field(  # chain check period (0: only at start)
        default=600.0, metadata=key("audit.verify_interval_s", live=True)
    )
    audit_full_verify_every: int = field(  # every Nth periodic check reads the whole log
        default=144, metadata=key("audit.full_verify_every")
    )
    audit_retain_files: int = field(default=0, metadata=key("audit.retain_files"))  # 0: all
    audit_rotate_bytes: int = field(default=16 << 20, metadata=key("audit.rotate_bytes"))
    audit_archive_dir: Path | None = field(default=None, metadata=key("audit.archive_dir"))
    sources: tuple[SourceConfig, ...] = ()  # [[sources]]: OCI references followed
    trust_watch: bool = False  # reload when trust_dir changes (a Kubernetes ConfigMap)

    @property
    def development(self) -> bool:
        return self.mode is Mode.DEVELOPMENT

    def resolve(self, raw: str) -> Path:
        """A path from a sub-parser's table (e.g. ``control.socket``), resolved like ours."""
        return Path(raw) if Path(raw).is_absolute() else self.base_dir / raw

    def changes(self, new: Config) -> list[Change]:
        """Every key whose value differs in ``new``, sorted by key."""
        return differences(self, new, skip=("path",))

    def reloaded(self, new: Config) -> Config:
        """This configuration with every live field taken from ``new`` (the rest kept)."""
        result: Config = merged(self, new)
        return result

    def restart_required(self, new: Config) -> list[str]:
        """The keys that differ in ``new`` but take effect only on a restart."""
        return [c.key for c in self.changes(new) if not c.live]

    def policy_for(self, name: str) -> Capabilities:
        """The operator's capability policy for plugin ``name`` (narrows its manifest)."""
        return self.plugin_policies.get(name, self.default_policy)

    @property
    def effective_audit_dir(self) -> Path:
        return self.audit_dir if self.audit_dir is not None else self.state_dir / "audit"
