"""One sync of one OCI source: resolve, check, download, verify, rename into plugins.d.

Order, each step refusing with a :class:`SourceError` before anything is written:

1. read the credential (at every sync: a rotated secret needs no restart);
2. fetch the manifest by tag or digest (a pin's manifest must hash to the pin);
3. check the Wasm OCI layout: config and layer media types, exactly one layer;
4. if ``plugins.d/oci-NAME.wasm`` already holds the layer's bytes (the layer digest *is*
   the module's sha256), verify them again (a key may have been removed) and stop: unchanged;
5. stream the layer, capped at the source's ``max_bytes`` and its declared size, hashing as
   it arrives; a digest that does not match is refused;
6. verify the module with the daemon's own verifier (signature, trust, manifest): an
   unsigned or untrusted artifact never enters plugins.d, so it cannot displace the file
   that the running version came from;
7. write it under a dot name in plugins.d (ignored by the watcher), fsync, rename over
   ``oci-NAME.wasm``, fsync the directory. From here the daemon treats it like any file in
   plugins.d: verification again, the rollback floor, the swap.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

from forgeoned.adapters.oci.credentials import read_credentials
from forgeoned.adapters.oci.registry import Connection, RegistryClient
from forgeoned.core.artifact import VerifiedArtifact
from forgeoned.core.oci import check_manifest, sha256_digest
from forgeoned.core.ports import Clock
from forgeoned.core.sources import SourceConfig, SyncOutcome, SyncResult
from forgeoned.errors import ArtifactError, SourceError, SyncReason

Verify = Callable[[bytes], VerifiedArtifact]


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

    def sync(self) -> SyncResult:
        c, ref = self.config, self.config.reference
        client = self._registry()
        raw = client.manifest(ref.repository, ref.selector)
        artifact = check_manifest(raw, ref.digest)
        layer = artifact.layer
        held = _read_regular(self.target, c.max_bytes)
        if held is not None and sha256_digest(held) == layer.digest:
            verified = self._verified(held)  # a key removed since still counts
            m = verified.manifest
            return SyncResult(SyncOutcome.UNCHANGED, self.clock.wall(), m.name, m.version,
                              verified.sha256, artifact.manifest_digest)  # fmt: skip
        buf = io.BytesIO()
        client.blob(ref.repository, layer, c.max_bytes, buf)
        data = buf.getvalue()
        verified = self._verified(data)
        self._install(data)
        m = verified.manifest
        return SyncResult(SyncOutcome.SYNCED, self.clock.wall(), m.name, m.version,
                          verified.sha256, artifact.manifest_digest)  # fmt: skip

    def _verified(self, data: bytes) -> VerifiedArtifact:
        try:
            return self.verify(data)
        except ArtifactError as exc:
            ref = self.config.reference
            raise SourceError(f"{exc} (artifact at {ref})", SyncReason.UNTRUSTED) from exc

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

    def _install(self, data: bytes) -> None:
        tmp = self.plugins_dir / f".{self.config.filename}.{os.getpid()}.partial"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.rename(self.target)
            dfd = os.open(self.plugins_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SourceError(f"cannot write {self.target}: {exc.strerror or exc}",
                              SyncReason.WRITE_FAILED) from exc  # fmt: skip


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
