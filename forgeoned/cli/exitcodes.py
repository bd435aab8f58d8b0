"""Exit codes of forgeonectl, stable for scripts.

| code | meaning |
| ---- | ------- |
| 0 | success |
| 1 | failure not covered below |
| 2 | usage error (argparse) |
| 3 | artifact rejected / not trusted (``verify``, ``install``) |
| 4 | daemon unreachable (no socket, connection refused) |
| 5 | permission denied by the daemon's RBAC |
| 6 | no such plugin |
| 7 | conflict (illegal state change, downgrade, invoking a paused plugin) |
| 8 | the plugin faulted while handling the request |
| 9 | the audit chain is broken (``audit verify``) |
| 10 | refused: the daemon cannot write its audit log now (free space, then retry) |
| 11 | application error: the plugin answered non-zero (``invoke`` prints its output) |
| 12 | the plugin cannot take calls now (failed, quarantined, stopped, no free instance) |

A reader that closes stdout early (``forgeonectl show x | head -1``) is not a failure: the
output stops silently, exit 0.
"""

from __future__ import annotations

from typing import Final

from forgeoned import errors

OK: Final = 0
FAILURE: Final = 1
USAGE: Final = 2
REJECTED: Final = 3
UNREACHABLE: Final = 4
FORBIDDEN: Final = 5
NOT_FOUND: Final = 6
CONFLICT: Final = 7
PLUGIN_FAULT: Final = 8
AUDIT_BROKEN: Final = 9
AUDIT_UNAVAILABLE: Final = 10
APPLICATION_ERROR: Final = 11
UNAVAILABLE: Final = 12


def exit_code_for(exc: errors.ForgeonedError) -> int:
    if isinstance(exc, errors.UnreachableError):
        return UNREACHABLE
    if isinstance(exc, errors.ArtifactError | errors.LoadError):
        return REJECTED
    if isinstance(exc, errors.ForbiddenError | errors.UnauthenticatedError):
        return FORBIDDEN
    if isinstance(exc, errors.NotFoundError):
        return NOT_FOUND
    if isinstance(exc, errors.ConflictError):
        return CONFLICT
    if isinstance(exc, errors.PluginFault):
        return PLUGIN_FAULT
    if isinstance(exc, errors.AuditUnavailableError):
        return AUDIT_UNAVAILABLE
    if isinstance(exc, errors.ApplicationError):
        return APPLICATION_ERROR
    if isinstance(exc, errors.UnavailableError):
        return UNAVAILABLE
    return FAILURE
