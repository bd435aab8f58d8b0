"""The whole error hierarchy of forgeoned.

Every class maps to exactly one audit ``reason`` and one control-API HTTP status. A fault
*inside a plugin* (trap, fuel, deadline, memory, non-zero status) is a separate branch from a
fault of forgeoned itself or of its inputs::

    ForgeonedError
    ├── ConfigError                    bad configuration file or value
    ├── ArtifactError                  an artifact that must not run (rejected)
    │   ├── ArtifactTooLargeError      over a size/count cap before parsing finished
    │   ├── MalformedModuleError       not a well-formed WebAssembly module
    │   ├── ManifestError              missing/invalid forgeone.manifest section
    │   ├── SignatureError             unsigned, bad or untrusted signature
    │   └── RollbackError              downgrade, or same version with other bytes
    ├── LoadError                      a valid artifact that does not fit ABI v1 / the limits
    ├── RuntimeVersionError            the installed wasmtime is not the pinned one (install)
    ├── PluginFault                    the plugin itself misbehaved
    │   ├── PluginTrap                 a trap; ``kind`` says which limit or trap
    │   └── PluginStatusError          an export returned a non-zero status
    ├── StateError                     forgeoned could not read/write its own state
    ├── AuditError                     the audit log could not be written or is broken
    └── ControlError                   a control request that cannot be served
        ├── BadRequestError
        ├── UnauthenticatedError
        ├── ForbiddenError
        ├── NotFoundError
        ├── ConflictError
        └── UnreachableError           forgeonectl cannot reach the daemon's socket
"""

from __future__ import annotations

import enum
from typing import ClassVar


class ForgeonedError(Exception):
    """Base of every error forgeoned raises on purpose."""

    reason: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    @property
    def code(self) -> str:
        """Stable machine-readable code (the audit reason)."""
        return self.reason


class ConfigError(ForgeonedError):
    reason = "config_invalid"
    http_status = 400


# --- artifacts -----------------------------------------------------------------------------


class ArtifactError(ForgeonedError):
    reason = "artifact_invalid"
    http_status = 422


class ArtifactTooLargeError(ArtifactError):
    reason = "too_large"


class MalformedModuleError(ArtifactError):
    reason = "malformed"


class ManifestError(ArtifactError):
    reason = "manifest_invalid"


class SignatureError(ArtifactError):
    """A signature problem; ``detail_reason`` refines it (unsigned, untrusted, revoked…)."""

    reason = "signature_invalid"

    def __init__(self, message: str, detail_reason: str = "signature_invalid") -> None:
        super().__init__(message)
        self.detail_reason = detail_reason

    @property
    def code(self) -> str:
        return self.detail_reason


class RollbackError(ArtifactError):
    reason = "downgrade"
    http_status = 409


class LoadError(ForgeonedError):
    """The module is well-formed and trusted but cannot be loaded (ABI, limits, compile)."""

    reason = "load_failed"
    http_status = 422


class RuntimeVersionError(ForgeonedError):
    """The installed wasmtime is not the release the fast call path is built for: an
    installation fault, refused when the daemon starts (see adapters/wasm/fastcall.py)."""

    reason = "runtime_version"


# --- faults inside a plugin ----------------------------------------------------------------


class TrapKind(enum.Enum):
    """What stopped a plugin call."""

    OUT_OF_FUEL = "out_of_fuel"
    DEADLINE = "deadline"
    MEMORY = "memory"
    STACK_OVERFLOW = "stack_overflow"
    UNREACHABLE = "unreachable"
    MEMORY_OUT_OF_BOUNDS = "memory_out_of_bounds"
    INTEGER_DIVIDE_BY_ZERO = "integer_divide_by_zero"
    INDIRECT_CALL = "indirect_call"
    HOST_ERROR = "host_error"
    INTERRUPTED = "interrupted"  # stopped by the host (drain timeout, shutdown)
    OTHER = "trap"


class PluginFault(ForgeonedError):
    reason = "plugin_fault"
    http_status = 502


class PluginTrap(PluginFault):
    reason = "trap"

    def __init__(self, message: str, kind: TrapKind, export: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.export = export

    @property
    def code(self) -> str:
        return self.kind.value


class PluginStatusError(PluginFault):
    reason = "status_nonzero"

    def __init__(self, export: str, status: int) -> None:
        super().__init__(f"export {export!r} returned status {status}")
        self.export = export
        self.status = status


# --- forgeoned's own faults ----------------------------------------------------------------


class StateError(ForgeonedError):
    reason = "state_io"


class AuditError(ForgeonedError):
    reason = "audit_failed"


# --- control API ---------------------------------------------------------------------------


class ControlError(ForgeonedError):
    reason = "control_error"
    http_status = 400


class BadRequestError(ControlError):
    reason = "bad_request"
    http_status = 400


class UnauthenticatedError(ControlError):
    reason = "unauthenticated"
    http_status = 401


class ForbiddenError(ControlError):
    reason = "forbidden"
    http_status = 403


class NotFoundError(ControlError):
    reason = "not_found"
    http_status = 404


class ConflictError(ControlError):
    reason = "conflict"
    http_status = 409


class UnreachableError(ControlError):
    """The client side: the control socket is missing, refuses, or answers garbage."""

    reason = "unreachable"
    http_status = 503
