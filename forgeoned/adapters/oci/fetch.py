"""One sync of one OCI source: resolve, check, download, verify, rename into plugins.d.

Order, each step refusing with a :class:`SourceError` before anything is written:

1. read the credential (at every sync: a rotated secret needs no restart);
2. fetch the manifest by tag or digest (a pin's manifest must hash to the pin);
3. check the Wasm OCI layout: config and layer media types, one module layer and at most
   one staging-attestation layer;
4. if ``plugins.d/oci-NAME.wasm`` already holds the layer's bytes (the layer digest *is*
   the module's sha256) and ``oci-NAME.wasm.intoto.json`` the attestation's (if any), verify
   them again (a key may have been removed) and stop: unchanged;
5. stream what differs, capped at the source's ``max_bytes`` (the attestation at the
   envelope cap) and the declared size, hashing as it arrives; a digest that does not match
   is refused;
6. verify the module with the daemon's own verifier (signature, trust, manifest, ceilings
   and, with ``require_staging``, the attestation that came with it): an artifact the daemon
   would refuse never enters plugins.d, so it cannot displace the file that the running
   version came from. A staging refusal keeps its own reason (``staging_unattested`` …);
7. write the module under a dot name in plugins.d (ignored by the watcher) and fsync it;
   ask ``approve`` (the follower records ``source.synced`` there: no record, no delivery);
   then install the attestation (atomically) *before* renaming the module over
   ``oci-NAME.wasm``, so the daemon never sees the module without it; fsync the directory.
   From here the daemon treats it like any file in plugins.d: verification again, the
   rollback floor, the swap.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

from forgeoned.adapters.files.atomic import atomic_write, fsync_dir
from forgeoned.adapters.oci.credentials import read_credentials
from forgeoned.adapters.oci.registry import Connection, RegistryClient
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.attestation import MAX_ENVELOPE_BYTES, SUFFIX
from forgeoned.core.oci import Descriptor, check_manifest, sha256_digest
from forgeoned.core.ports import Clock
from forgeoned.core.sources import SourceConfig, SyncOutcome, SyncResult
from forgeoned.errors import ArtifactError, SourceError, StagingError, StateError, SyncReason

Verify = Callable[[bytes, bytes | None], VerifiedArtifact]  # (module, attestation)
Approve = Callable[[SyncResult], None]  # raises to stop a delivery before anything lands


class OciFetcher:
    """Syncs one source into ``plugins_dir`` (not thread-safe: its follower serialises)."""

    def __init__(
        self,
        config: SourceConfig,
        plugins_dir: Path,
        credentials_dir: Path | None,
        verify: Verify,
        clock: Clock,
    ) -> None:
        self.config = config
        self.plugins_dir = plugins_dir
        self.credentials_dir = credentials_dir
        self.verify = verify
        self.clock = clock
        self._client: RegistryClient | None = None  # kept between syncs (TLS context, pool)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _registry(self) -> RegistryClient:
        """The client for the current connection settings (a rotated credential makes a new
        one: the old one's cached Authorization must not be reused)."""
        conn = self._connection()
        if self._client is not None and self._client.conn != conn:
            self.close()
        if self._client is None:
            self._client = RegistryClient(conn)
        return self._client

    @property
    def target(self) -> Path:
        return self.plugins_dir / self.config.filename

    @property
    def attestation_target(self) -> Path:
        return self.plugins_dir / f"{self.config.filename}{SUFFIX}"

    def sync(self, approve: Approve | None = None) -> SyncResult:
        c, ref = self.config, self.config.reference
        client = self._registry()
        raw = client.manifest(ref.repository, ref.selector)
        artifact = check_manifest(raw, ref.digest)
        held = _held(self.target, c.max_bytes, artifact.layer)
        held_att = None
        if artifact.attestation is not None:
            held_att = _held(self.attestation_target, MAX_ENVELOPE_BYTES, artifact.attestation)
        if held is not None and (artifact.attestation is None or held_att is not None):
            verified = self._verified(held, held_att)  # a key removed since still counts
            m = verified.manifest
            return SyncResult(SyncOutcome.UNCHANGED, self.clock.wall(), m.name, m.version,
                              verified.sha256, artifact.manifest_digest)  # fmt: skip
        module = held if held is not None else self._blob(client, artifact.layer, c.max_bytes)
        att = held_att
        if artifact.attestation is not None and att is None:
            att = self._blob(client, artifact.attestation, MAX_ENVELOPE_BYTES)
        verified = self._verified(module, att)
        m = verified.manifest
        result = SyncResult(SyncOutcome.SYNCED, self.clock.wall(), m.name, m.version,
                            verified.sha256, artifact.manifest_digest)  # fmt: skip
        self._install(module if held is None else None,
                      att if held_att is None else None, result, approve)  # fmt: skip
        return result

    def _blob(self, client: RegistryClient, layer: Descriptor, cap: int) -> bytes:
        ref = self.config.reference
        buf = io.BytesIO()
        client.blob(ref.repository, layer, cap, buf)
        return buf.getvalue()

    def _verified(self, data: bytes, attestation: bytes | None) -> VerifiedArtifact:
        try:
            return self.verify(data, attestation)
        except ArtifactError as exc:
            ref = self.config.reference
            # require_staging's refusal keeps its reason: "unattested" is not "untrusted"
            refused = exc.why if isinstance(exc, StagingError) else None
            raise SourceError(f"{exc} (artifact at {ref})", SyncReason.UNTRUSTED,
                              refused) from exc  # fmt: skip

    def _connection(self) -> Connection:
        c = self.config
        user = password = None
        if c.credentials is not None:
            if self.credentials_dir is None:
                raise SourceError(
                    f"source {c.name}: credential {c.credentials!r} but no credentials "
                    "directory (LoadCredential= in the unit)",
                    SyncReason.CREDENTIALS,
                )
            user, password = read_credentials(self.credentials_dir / c.credentials)
        return Connection(c.reference.host, c.plain_http, c.tls_verify, c.ca_file, c.timeout_s,
                          user, password)  # fmt: skip

    def _install(
        self, module: bytes | None, attestation: bytes | None, result: SyncResult,
        approve: Approve | None,
    ) -> None:  # fmt: skip
        """Write what changed: the module to a dot name first; ``approve``; the attestation
        in place; then the module renamed over the target. Anything raised before the
        rename leaves plugins.d as it was (but for an attestation of other bytes, which
        attests nothing the daemon holds)."""
        tmp = self.plugins_dir / f".{self.config.filename}.{os.getpid()}.partial"
        try:
            if module is not None:
                _write_synced(tmp, module)
            if approve is not None:
                approve(result)
            if attestation is not None:
                atomic_write(self.attestation_target, attestation, 0o640)
            if module is not None:
                tmp.rename(self.target)
            fsync_dir(self.plugins_dir)
        except (OSError, StateError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else None
            raise SourceError(f"cannot write {self.target}: {why or exc}",
                              SyncReason.WRITE_FAILED) from exc  # fmt: skip
        finally:
            tmp.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _held(path: Path, cap: int, layer: Descriptor) -> bytes | None:
    """What plugins.d holds at ``path`` if those are ``layer``'s bytes, else None."""
    data = _read_regular(path, cap)
    return data if data is not None and sha256_digest(data) == layer.digest else None


def _read_regular(path: Path, cap: int) -> bytes | None:
    """The bytes of a regular file of at most ``cap`` bytes (None if missing, a symlink,
    larger, or unreadable): what this source wrote last."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read(cap + 1)
    return data if len(data) <= cap else None
