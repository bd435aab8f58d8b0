"""``require_staging``: the verifier's last step, and where attestations are looked for.

:class:`Attestations` is handed to the :class:`~forgeoned.service.artifact_source.ArtifactVerifier`
(the daemon's, and ``forgeonectl check``'s) when the operator's ``[staging]`` table sets
``require_staging``; it asks its :data:`Finder` for the envelopes that might attest an
artifact (the daemon: every ``*.intoto.json`` in plugins.d; ``check``: the file beside the
artifact) and lets :func:`~forgeoned.core.attestation.check_attestations` decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from forgeoned.core.attestation import Opened, check_attestations
from forgeoned.core.manifest import Manifest
from forgeoned.core.staging_policy import StagingPolicy
from forgeoned.core.trust import TrustPolicy

Finder = Callable[[], Iterable[bytes]]


def _nothing() -> Iterable[bytes]:
    return ()


class Attestations:
    def __init__(self, policy: StagingPolicy, trust: TrustPolicy, find: Finder = _nothing) -> None:
        self.policy = policy
        self.trust = trust
        self.find = find

    def require(
        self, manifest: Manifest, sha256: str, now: float, extra: Iterable[bytes] = ()
    ) -> Opened:
        """Raises :class:`~forgeoned.errors.StagingError` unless a valid attestation exists
        (among those found, and ``extra``)."""
        found = [*extra, *self.find()]
        return check_attestations(
            found, manifest.name, sha256, self.trust, self.policy.attesters, now
        )
