"""The whole error hierarchy of forgeoned, and the reason enums its codes come from.

Every class maps to exactly one audit ``reason`` and one control-API HTTP status. Five
classes refine their code with an enum instead (``code`` is the member's value):
:class:`PluginTrap` by :class:`TrapKind`, :class:`SignatureError` by :class:`SignatureReason`,
:class:`StagingError` by :class:`StagingReason`, :class:`SourceError` by :class:`SyncReason`
and :class:`HttpProtocolError` by :class:`RequestProblem` (which also gives its status).
:class:`FindingCode` names what ``forgeonectl check`` warns about that is no error (the daemon
loads the artifact anyway). Every
code means one class, so a client rebuilds the error from the API's ``code`` alone
(:func:`error_from_code`); ``tests/unit/test_errors.py`` checks that. A fault *inside a
plugin* (trap, fuel, deadline, memory, a lifecycle export's non-zero status) is a separate
branch from a fault of forgeoned itself or of its inputs, and a plugin's own answer that it
could not do what was asked (``handle`` returning non-zero) is neither::

    ForgeonedError                     internal (500)
    ├── ConfigError                    bad configuration file or value
    │   └── InsecurePathError          a trusted file others could change (StrictModes)
    ├── ArtifactError                  an artifact that must not run (rejected, 422)
    │   ├── ArtifactTooLargeError      over a size/count cap before parsing finished
    │   ├── MalformedModuleError       not a well-formed WebAssembly module
    │   ├── ManifestError              missing/invalid forgeone.manifest section
    │   ├── SignatureError             code: a SignatureReason (unsigned, tampered, …)
    │   ├── RollbackError              downgrade, or same version with other bytes (409)
    │   ├── UnsafeFileError            a symlink, FIFO, device… where a plugin file was expected
    │   ├── UnreadableFileError        the plugin file cannot be opened or read
    │   ├── LimitExceededError         asks for more than an operator ceiling allows
    │   └── StagingError               code: a StagingReason (require_staging: no valid
    │                                  attestation: unattested, forged, mismatch, …)
    ├── LoadError                      a valid artifact that does not fit ABI v1 / the limits
    │   ├── CompileLimitError          the compile worker ran out of time or memory
    │   └── PluginConfigError          plugins.conf.d/NAME.toml does not fit the declared keys
    ├── FileChangedError               a file changed while it was read: read it again later
    ├── RuntimeVersionError            the installed wasmtime is not the pinned one (install)
    ├── ReplayDivergedError            ``run --replay``: not the recorded host interaction
    ├── PluginFault                    the plugin itself misbehaved (502)
    │   ├── PluginTrap                 code: a TrapKind (out_of_fuel, deadline, …)
    │   ├── PluginStatusError          a lifecycle export returned a non-zero status
    │   └── KvQuotaError               a kv_set over the plugin's quota
    ├── ApplicationError               the plugin answered with a non-zero status (422)
    ├── SourceError                    code: a SyncReason (an OCI source could not be synced)
    ├── StateError                     forgeoned could not read/write its own state
    ├── AuditError                     the audit log is broken or its key unusable
    │   └── AuditUnavailableError      a record cannot be made durable now (disk full…) (503)
    └── ControlError                   a control request that cannot be served
        ├── BadRequestError            (400)
        │   └── HttpProtocolError      code: a RequestProblem (malformed_json, timeout, …)
        ├── UnauthenticatedError       (401)
        ├── ForbiddenError             (403)
        ├── NotFoundError              (404)
        ├── MethodNotAllowedError      (405)
        ├── ConflictError              (409)
        │   ├── IllegalTransition      a lifecycle trigger the plugin's state does not allow
        │   └── PluginPausedError      a call to a paused plugin that would not wait for it
        ├── BusyError                  too many connections or requests (503)
        ├── UnavailableError           the plugin exists but cannot take calls now (503)
        └── UnreachableError           forgeonectl cannot reach the daemon's socket
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final


class ForgeonedError(Exception):
    """Base of every error forgeoned raises on purpose."""

    reason: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    @property
    def code(self) -> str:
        """Stable machine-readable code (the audit reason, the API's ``error.code``)."""
        return self.reason


class ConfigError(ForgeonedError):
    reason = "config_invalid"
    http_status = 400


class InsecurePathError(ConfigError):
    """The config file, trust store or credentials could be changed by someone other than
    root or the daemon's user (owner, group/other write, a symlinked key): not trusted."""

    reason = "insecure_permissions"


# --- artifacts -----------------------------------------------------------------------------


class ArtifactError(ForgeonedError):
    reason = "artifact_invalid"
    http_status = 422
    # Set when the refusal came after the manifest was read (the audit event names them), or
    # from the manifest the artifact claims, unverified (``claimed``), to name a rejection.
    plugin: str | None = None
    version: str | None = None
    claimed: bool = False


class ArtifactTooLargeError(ArtifactError):
    reason = "too_large"


class MalformedModuleError(ArtifactError):
    reason = "malformed"


class ManifestError(ArtifactError):
    reason = "manifest_invalid"


class SignatureReason(enum.Enum):
    """Why a signature check refused an artifact (a :class:`SignatureError`'s ``code``)."""

    UNSIGNED = "unsigned"
    UNTRUSTED_KEY = "untrusted_key"
    REVOKED_KEY = "revoked_key"
    OUT_OF_SCOPE = "out_of_scope"
    THRESHOLD_NOT_MET = "threshold_not_met"
    EXPIRED = "expired"
    TAMPERED = "tampered"
    MALFORMED_SIGNATURE = "malformed_signature"
    AMBIGUOUS = "ambiguous"  # an embedded and a detached signature at once
    ALREADY_SIGNED = "already_signed"  # signing or packaging a module that is signed
    INVALID = "signature_invalid"  # no finer reason known


class SignatureError(ArtifactError):
    """A signature problem; ``why`` refines it (unsigned, untrusted_key, revoked_key…)."""

    reason = SignatureReason.INVALID.value

    def __init__(self, message: str, why: SignatureReason = SignatureReason.INVALID) -> None:
        super().__init__(message)
        self.why = why

    @property
    def code(self) -> str:
        return self.why.value


class RollbackError(ArtifactError):
    reason = "downgrade"
    http_status = 409


class UnsafeFileError(ArtifactError):
    """A symlink, FIFO, device, directory or socket where a plugin file was expected."""

    reason = "unsafe_file"


class UnreadableFileError(ArtifactError):
    reason = "unreadable"


class LimitExceededError(ArtifactError):
    """The manifest (or its compiled code) asks for more than an operator ceiling allows."""

    reason = "over_ceiling"

    def __init__(
        self, message: str, *, plugin: str | None = None, version: str | None = None
    ) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.version = version


class StagingReason(enum.Enum):
    """Why ``require_staging`` refused an artifact (a :class:`StagingError`'s ``code``)."""

    UNATTESTED = "staging_unattested"  # no attestation names this plugin at all
    FORGED = "staging_forged"  # its DSSE signature does not verify
    MISMATCH = "staging_mismatch"  # attested for this plugin, but other bytes (sha256)
    EXPIRED = "staging_expired"
    WRONG_ROLE = "staging_wrong_role"  # signed by a key that is not a configured attester
    FAULTED = "staging_faulted"  # promote: the plugin faulted in staging
    INSUFFICIENT = "staging_insufficient"  # promote: fewer calls / less time than required
    MALFORMED = "staging_malformed"  # not a DSSE envelope of an in-toto Statement v1


class StagingError(ArtifactError):
    """No valid staging attestation where production requires one; ``why`` refines it."""

    reason = "staging_invalid"

    def __init__(self, message: str, why: StagingReason = StagingReason.MALFORMED) -> None:
        super().__init__(message)
        self.why = why

    @property
    def code(self) -> str:
        return self.why.value


class FindingCode(enum.Enum):
    """What ``forgeonectl check`` reports that does not stop a load (a warning)."""

    CAPABILITY_NOT_GRANTED = "capability_not_granted"


class LoadError(ForgeonedError):
    """The module is well-formed and trusted but cannot be loaded (ABI, limits, compile)."""

    reason = "load_failed"
    http_status = 422


class CompileLimitError(LoadError):
    reason = "compile_limit"


class PluginConfigError(LoadError):
    """A plugin's configuration file has an unknown key, a value of the wrong type, misses a
    required key or names a missing credential (the message names the file and the key)."""

    reason = "plugin_config_invalid"


class FileChangedError(ForgeonedError):
    """The file changed while it was read; read it again later (not a rejection)."""

    reason = "file_changed"
    http_status = 409


class RuntimeVersionError(ForgeonedError):
    """The installed wasmtime is not the release the fast call path is built for: an
    installation fault, refused when the daemon starts (see adapters/wasm/fastcall.py)."""

    reason = "runtime_version"


class ReplayDivergedError(ForgeonedError):
    """``forgeonectl run --replay``: the plugin made a host call other than the one recorded
    next (the call fails as a host error, so the run faults there)."""

    reason = "replay_diverged"


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


class OutboundRule(enum.Enum):
    """The rule that refused a plugin's outbound HTTP request (``http_request``); the
    ``rule`` of its ``hostcall.denied`` audit event. Not an error class: the plugin gets a
    negative result, the daemon raises nothing."""

    NOT_GRANTED = "not_granted"  # origin not in manifest ∩ operator grant (-2)
    SECRET_NOT_BOUND = "secret_not_bound"  # noqa: S105 ({{secret:NAME}} not bound here, -2)
    HEADER_INJECTION = "header_injection"  # CR/LF/NUL in a header name or value (-3)
    METADATA = "metadata"  # the resolved address is refused (-5): cloud metadata,
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link_local"
    CGNAT = "cgnat"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"
    REDIRECT_NOT_GRANTED = "redirect_not_granted"  # a redirect hop outside the allowlist (-5)
    TOO_MANY_REDIRECTS = "too_many_redirects"  # (-5)
    TIMEOUT = "timeout"  # timeout_ms or the call's deadline (-6)
    MAX_REQUEST_BYTES = "max_request_bytes"  # (-7)
    MAX_RESPONSE_BYTES = "max_response_bytes"  # (-7)


class PluginFault(ForgeonedError):
    reason = "plugin_fault"
    http_status = 502


class PluginTrap(PluginFault):
    reason = TrapKind.OTHER.value

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


class KvQuotaError(PluginFault):
    """A `kv_set` that would take the plugin's store over its quota (the call returns -4)."""

    reason = "kv_quota"


# --- a plugin's own answer -----------------------------------------------------------------


class ApplicationError(ForgeonedError):
    """``handle`` (or ``pause``, ``resume``, ``tick``) returned a non-zero status: the
    plugin's answer, not a fault. Nothing restarts; the caller gets ``status`` and the
    ``output`` the plugin wrote before it returned (empty for a lifecycle export)."""

    reason = "application_error"
    http_status = 422

    def __init__(
        self, message: str, *, export: str = "handle", status: int = 0, output: bytes = b""
    ) -> None:
        super().__init__(message)
        self.export = export
        self.status = status
        self.output = output


# --- forgeoned's own faults ----------------------------------------------------------------


class SyncReason(enum.Enum):
    """Why syncing an OCI source failed (a :class:`SourceError`'s ``code``; the label of
    ``forgeone_source_failures_total{reason}`` and the reason of ``source.failed``)."""

    UNREACHABLE = "registry_unreachable"  # connection refused, DNS, TLS handshake
    TIMEOUT = "registry_timeout"  # connect or read took longer than the source's timeout
    AUTH_REFUSED = "auth_refused"  # 401/403 with or without credentials
    NOT_FOUND = "reference_not_found"  # no such repository, tag or digest
    REGISTRY_ERROR = "registry_error"  # any other non-2xx answer
    BAD_MANIFEST = "bad_manifest"  # not JSON, not an OCI image manifest, or its digest differs
    MEDIA_TYPE = "wrong_media_type"  # not the Wasm OCI layout (config or layer media type)
    LAYER_COUNT = "layer_count"  # not one application/wasm layer (+ at most one attestation)
    DIGEST_MISMATCH = "digest_mismatch"  # the blob's bytes do not hash to its descriptor
    TOO_LARGE = "blob_too_large"  # the layer is larger than the source's size cap
    UNTRUSTED = "artifact_untrusted"  # the module is unsigned, untrusted or malformed
    CREDENTIALS = "credentials_unreadable"  # the systemd credential file is missing or bad
    WRITE_FAILED = "write_failed"  # the staging file or the rename into plugins.d failed


class SourceError(ForgeonedError):
    """An OCI source could not be synced; ``why`` says where it stopped. Nothing was written
    into plugins.d, so whatever runs keeps running. ``refused``: the daemon's own reason when
    its verifier refused the artifact for a reason more specific than ``artifact_untrusted``
    (a :class:`StagingReason`: ``require_staging`` without a valid attestation)."""

    reason = SyncReason.REGISTRY_ERROR.value
    http_status = 502

    def __init__(
        self,
        message: str,
        why: SyncReason = SyncReason.REGISTRY_ERROR,
        refused: StagingReason | None = None,
    ) -> None:
        super().__init__(message)
        self.why = why
        self.refused = refused

    @property
    def code(self) -> str:
        return self.refused.value if self.refused is not None else self.why.value


class StateError(ForgeonedError):
    reason = "state_io"


class AuditError(ForgeonedError):
    reason = "audit_failed"


class AuditUnavailableError(AuditError):
    """A record could not be written or synced (a full disk, an I/O error): the action it
    records is refused, and the caller may try again once the audit log can be written."""

    reason = "audit_unavailable"
    http_status = 503


# --- control API ---------------------------------------------------------------------------


class ControlError(ForgeonedError):
    reason = "control_error"
    http_status = 400


class BadRequestError(ControlError):
    reason = "bad_request"
    http_status = 400


class RequestProblem(enum.Enum):
    """Why a control request could not be read (an :class:`HttpProtocolError`'s ``code``)."""

    BAD_REQUEST = "bad_request"  # request line, header or Content-Length not understood
    MALFORMED_JSON = "malformed_json"
    TIMEOUT = "timeout"  # the request did not arrive whole in time
    LENGTH_REQUIRED = "length_required"  # a chunked body
    BODY_TOO_LARGE = "body_too_large"
    HEADERS_TOO_LARGE = "headers_too_large"

    @property
    def http_status(self) -> int:
        return _PROBLEM_STATUS[self]


_PROBLEM_STATUS: Final = {
    RequestProblem.BAD_REQUEST: 400,
    RequestProblem.MALFORMED_JSON: 400,
    RequestProblem.TIMEOUT: 408,
    RequestProblem.LENGTH_REQUIRED: 411,
    RequestProblem.BODY_TOO_LARGE: 413,
    RequestProblem.HEADERS_TOO_LARGE: 431,
}


class HttpProtocolError(BadRequestError):
    """The request cannot be parsed or is over a limit; the connection is closed after."""

    def __init__(self, problem: RequestProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem

    @property
    def code(self) -> str:
        return self.problem.value

    @property
    def status(self) -> int:
        """The HTTP status to answer with (instead of the class's ``http_status``)."""
        return self.problem.http_status


class UnauthenticatedError(ControlError):
    reason = "unauthenticated"
    http_status = 401


class ForbiddenError(ControlError):
    reason = "forbidden"
    http_status = 403


class NotFoundError(ControlError):
    reason = "not_found"
    http_status = 404


class MethodNotAllowedError(ControlError):
    reason = "method_not_allowed"
    http_status = 405


class ConflictError(ControlError):
    reason = "conflict"
    http_status = 409


class IllegalTransition(ConflictError):
    """A lifecycle trigger that is not legal in the plugin's state (core.lifecycle's table)."""

    reason = "illegal_transition"

    def __init__(self, state: enum.Enum, trigger: enum.Enum) -> None:
        super().__init__(f"cannot {trigger.value} a plugin that is {state.value}")
        self.state = state
        self.trigger = trigger


class PluginPausedError(ConflictError):
    """The plugin is paused and the call was not asked to wait for it (``--wait``)."""

    reason = "paused"


class BusyError(ControlError):
    """Too many connections or requests; try again later."""

    reason = "busy"
    http_status = 503


class UnavailableError(ControlError):
    """The plugin exists but cannot take calls now (failed, quarantined, removed, timed out)."""

    reason = "unavailable"
    http_status = 503


class UnreachableError(ControlError):
    """The client side: the control socket is missing, refuses, or answers garbage."""

    reason = "daemon_unreachable"
    http_status = 503


# --- codes ---------------------------------------------------------------------------------


def error_classes() -> list[type[ForgeonedError]]:
    """Every class of the tree above, the base first."""
    found: list[type[ForgeonedError]] = []
    todo: list[type[ForgeonedError]] = [ForgeonedError]
    while todo:
        cls = todo.pop(0)
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def all_codes() -> frozenset[str]:
    """Every code an error can carry: the class reasons and every refining enum's values."""
    codes = {cls.reason for cls in error_classes()}
    for refining in (TrapKind, SignatureReason, StagingReason, RequestProblem, SyncReason):
        codes |= {member.value for member in refining}
    return frozenset(codes)


def _message_only(cls: type[ForgeonedError]) -> bool:
    """True when ``cls(message)`` builds it (its own or an inherited constructor allows it)."""
    own = next((k for k in cls.__mro__ if "__init__" in vars(k)), Exception)
    if own is Exception:
        return True
    import inspect  # only clients rebuild errors from codes: not loaded by every daemon start

    try:
        inspect.signature(vars(own)["__init__"]).bind(None, "message")
    except TypeError:
        return False
    return True


def error_from_code(code: str, message: str) -> ForgeonedError:
    """The error an API answer stands for, rebuilt from its ``code`` alone.

    A class whose constructor needs more than a message (``PluginStatusError``) comes back as
    its nearest parent that does not; an unknown code as a plain :class:`ForgeonedError`.
    """
    if code in _TRAP_CODES:
        return PluginTrap(message, TrapKind(code))
    if code in _SIGNATURE_CODES:
        return SignatureError(message, SignatureReason(code))
    if code in _STAGING_CODES:
        return StagingError(message, StagingReason(code))
    if code in _SYNC_CODES:
        return SourceError(message, SyncReason(code))
    cls = _BY_REASON.get(code)
    if cls is not None:
        while not _message_only(cls):
            cls = cls.__mro__[1]
        return cls(message)
    if code in _PROBLEM_CODES:
        return HttpProtocolError(RequestProblem(code), message)
    return ForgeonedError(message)


_TRAP_CODES: Final = frozenset(k.value for k in TrapKind)
_SIGNATURE_CODES: Final = frozenset(r.value for r in SignatureReason)
_STAGING_CODES: Final = frozenset(r.value for r in StagingReason)
_PROBLEM_CODES: Final = frozenset(p.value for p in RequestProblem)
_SYNC_CODES: Final = frozenset(r.value for r in SyncReason)
_BY_REASON: Final = {cls.reason: cls for cls in reversed(error_classes())}
