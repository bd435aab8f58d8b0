"""Where a swap's verified bytes come from, and the verifier that holds the trust in force.

The loader asks :class:`ArtifactSource` for the artifact of a candidate: the plugins.d index
verified it when it read the file (those exact bytes, never re-read), and a candidate
restored from the state is served from the copy the active set kept (verified now, against
today's trust). On a reload the daemon gives :class:`ArtifactVerifier` the new trust and
mode, and :meth:`ArtifactSource.recheck` tells which running versions it no longer accepts.
"""

from __future__ import annotations

from forgeoned.core.artifact import VerifiedArtifact, name_rejection, verify_artifact
from forgeoned.core.ceilings import CeilingPolicy, check_manifest
from forgeoned.core.desired import Candidate
from forgeoned.core.ports import Clock
from forgeoned.core.trust import Mode, TrustPolicy
from forgeoned.errors import ArtifactError
from forgeoned.service.active_set import ActiveSet
from forgeoned.service.plugin_index import Known, PluginDirectory, Rejection
from forgeoned.service.staging import Attestations


class ArtifactVerifier:
    """Signature, manifest and trust checks, the operator's ceilings and (``require_staging``)
    the staging attestation, as in force."""

    def __init__(
        self,
        trust: TrustPolicy,
        mode: Mode,
        ceilings: CeilingPolicy,
        clock: Clock,
        attest: Attestations | None = None,
    ) -> None:
        self.trust = trust
        self.mode = mode
        self.ceilings = ceilings
        self.attest = attest
        self._clock = clock

    def __call__(
        self, data: bytes, detached: bytes | None, attestation: bytes | None = None
    ) -> VerifiedArtifact:
        """Raises :class:`ArtifactError` for bytes that must not run (naming the plugin
        whenever a manifest can be read, see :func:`name_rejection`); ``attestation``: one
        more staging attestation to consider (an upload's, not yet in plugins.d)."""
        try:
            artifact = verify_artifact(
                data, detached=detached, trust=self.trust, mode=self.mode, now=self._clock.wall()
            )
            check_manifest(self.ceilings, artifact.manifest)  # the operator's ceilings
            if self.attest is not None and self.attest.policy.required:
                extra = (attestation,) if attestation is not None else ()
                self.attest.require(artifact.manifest, artifact.sha256, self._clock.wall(), extra)
        except ArtifactError as exc:
            name_rejection(exc, data)
            raise
        return artifact

    def reload(self, trust: TrustPolicy, mode: Mode, ceilings: CeilingPolicy) -> None:
        self.trust, self.mode, self.ceilings = trust, mode, ceilings
        if self.attest is not None:
            self.attest.trust = trust


class ArtifactSource:
    def __init__(
        self, verify: ArtifactVerifier, directory: PluginDirectory, active: ActiveSet
    ) -> None:
        self.verify = verify
        self._directory = directory
        self._active = active

    @property
    def trust(self) -> TrustPolicy:
        """The trust in force (what ``forgeonectl keys list`` shows)."""
        return self.verify.trust

    def rejected(self) -> list[Rejection]:
        """The files plugins.d holds that are refused now."""
        return self._directory.rejected()

    def fetch(self, cand: Candidate) -> Known:
        """The verified artifact for a swap (with its detached signature): from the plugins.d
        index (verified when read), else the copy kept in the state directory (verified now)."""
        known = self._directory.known(cand)
        if known is not None:
            return known
        blob = self._active.blob(cand.sha256)
        if blob is None:
            raise ArtifactError(f"{cand.filename}: file is gone or changed since it was read")
        return self.verify(*blob), blob[1]

    def ready(self, candidates: list[Candidate]) -> list[VerifiedArtifact]:
        """The artifacts of ``candidates`` the index already verified (to compile ahead)."""
        return [k[0] for c in candidates if (k := self._directory.known(c)) is not None]

    def recheck(self, sha256: str) -> ArtifactError | None:
        """Why the kept copy of ``sha256`` no longer verifies (None: it does, or is gone)."""
        blob = self._active.blob(sha256)
        if blob is None:
            return None
        try:
            self.verify(*blob)
        except ArtifactError as exc:
            return exc
        return None
