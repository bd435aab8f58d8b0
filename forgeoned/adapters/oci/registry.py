"""A small client of the OCI distribution API (v2) over httpx: push and pull one Wasm artifact.

Why not the ``oras`` package: it is built on ``requests`` without type hints, writes whole
blobs to disk before anything can check them, and has no hook for a size cap or a deadline
over the whole download. The five endpoints forgeoned needs (blob HEAD/upload, manifest
PUT/GET, blob GET) are a page of httpx, which is already a dependency, typed, and gives every
request a timeout and a streamed body we can cap and hash as it arrives.

Authentication: HTTP Basic (what ``docker-registry`` with htpasswd asks for) and the registry
token flow (a ``Bearer`` challenge answered by the realm with the same credentials). TLS:
verified by default, against the system store or ``ca_file``; plain HTTP only when the
source says ``plain_http = true``. Every httpx failure becomes a :class:`SourceError` with a
:class:`SyncReason`, at this boundary.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Final

import httpx

from forgeoned.core.oci import (
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    Descriptor,
    PushPlan,
    sha256_digest,
)
from forgeoned.errors import SourceError, SyncReason

_CHALLENGE: Final = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach one registry (from a ``[[sources]]`` entry or ``push``'s flags)."""

    host: str
    plain_http: bool = False
    tls_verify: bool = True
    ca_file: str | None = None
    timeout_s: float = 30.0
    username: str | None = None
    password: str | None = None


class RegistryClient:
    def __init__(self, conn: Connection, transport: httpx.BaseTransport | None = None) -> None:
        scheme = "http" if conn.plain_http else "https"
        verify: bool | ssl.SSLContext = conn.tls_verify
        if conn.ca_file and conn.tls_verify and not conn.plain_http:
            try:
                verify = ssl.create_default_context(cafile=conn.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise SourceError(f"ca_file {conn.ca_file}: {exc}",
                                  SyncReason.UNREACHABLE) from exc  # fmt: skip
        self.conn = conn
        self._http = httpx.Client(
            base_url=f"{scheme}://{conn.host}/v2/",
            timeout=httpx.Timeout(conn.timeout_s),
            verify=verify,
            transport=transport,
            follow_redirects=True,
        )
        self._auth: str | None = None  # the Authorization header that worked last

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- push -------------------------------------------------------------------------------

    def push(
        self, repository: str, tag: str, plan: PushPlan, module: bytes,
        attestation: bytes | None = None,
    ) -> str:  # fmt: skip
        """Upload the config, module (and attestation) blobs, then the manifest under
        ``tag``; its digest."""
        self._put_blob(repository, plan.config)
        self._put_blob(repository, module)
        if attestation is not None:
            self._put_blob(repository, attestation)
        headers = {"Content-Type": MANIFEST_MEDIA_TYPE}
        with self._request("PUT", f"{repository}/manifests/{tag}", plan.manifest, headers) as r:
            self._expect(r, 201, f"manifest {repository}:{tag}")
        return plan.digest

    def _put_blob(self, repository: str, data: bytes) -> None:
        digest = sha256_digest(data)
        with self._request("HEAD", f"{repository}/blobs/{digest}") as r:
            if r.status_code == 200:
                return  # already there
        with self._request("POST", f"{repository}/blobs/uploads/") as r:
            self._expect(r, 202, f"blob upload to {repository}")
            location = r.headers.get("location", "")
        if not location:
            raise SourceError("the registry gave no upload location", SyncReason.REGISTRY_ERROR)
        joiner = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream"}
        with self._request("PUT", f"{location}{joiner}digest={digest}", data, headers) as r:
            self._expect(r, 201, f"blob {digest}")

    # --- pull -------------------------------------------------------------------------------

    def manifest(self, repository: str, selector: str) -> bytes:
        """The manifest's raw bytes (at most MAX_MANIFEST_BYTES)."""
        headers = {"Accept": MANIFEST_MEDIA_TYPE}
        with self._request("GET", f"{repository}/manifests/{selector}", None, headers) as r:
            self._expect(r, 200, f"manifest {repository}:{selector}")
            return b"".join(self._capped(r, MAX_MANIFEST_BYTES, "manifest", None))

    def blob(self, repository: str, layer: Descriptor, cap: int, out: IO[bytes]) -> None:
        """Stream the layer into ``out``: refused when over ``cap`` or its declared size, or
        when its bytes do not hash to its digest (``out`` then holds garbage: discard it)."""
        if layer.size > cap:
            raise SourceError(f"layer is {layer.size} bytes, over the cap of {cap}",
                              SyncReason.TOO_LARGE)  # fmt: skip
        hasher = hashlib.sha256()
        with self._request("GET", f"{repository}/blobs/{layer.digest}") as r:
            self._expect(r, 200, f"blob {layer.digest}")
            for chunk in self._capped(r, min(cap, layer.size), "layer", cap):
                hasher.update(chunk)
                out.write(chunk)
        got = "sha256:" + hasher.hexdigest()
        if got != layer.digest:
            raise SourceError(f"blob hashes to {got}, not {layer.digest}",
                              SyncReason.DIGEST_MISMATCH)  # fmt: skip

    def _capped(self, r: httpx.Response, limit: int, what: str, cap: int | None) -> Iterator[bytes]:
        """The body as each network read returns it, cut off past ``limit`` bytes and past the
        source's timeout in total (a registry that trickles bytes must not hold a sync
        forever). Each read is checked: a fixed ``iter_bytes`` size would buffer a trickle
        until that many bytes came, so the deadline would be seen only at the end. A sync
        thus ends within ``timeout_s`` plus one read (itself bounded by ``timeout_s``)."""
        deadline = time.monotonic() + self.conn.timeout_s
        seen = 0
        try:
            for chunk in r.iter_bytes():
                seen += len(chunk)
                if seen > limit:
                    raise SourceError(f"{what} is longer than {limit} bytes", _overflow(seen, cap))
                if time.monotonic() > deadline:
                    raise SourceError(f"{what} took longer than {self.conn.timeout_s:g} s",
                                      SyncReason.TIMEOUT)  # fmt: skip
                yield chunk
        except httpx.TimeoutException as exc:
            raise SourceError(f"{what}: read timed out", SyncReason.TIMEOUT) from exc
        except httpx.TransportError as exc:
            raise SourceError(f"{what}: {exc}", SyncReason.UNREACHABLE) from exc

    # --- requests and authentication ------------------------------------------------------

    @contextmanager
    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        sent = dict(headers or {})
        if self._auth is not None:
            sent["Authorization"] = self._auth
        r = self._send(method, url, body, sent)
        if r.status_code == 401 and self._login(r):
            r.close()
            assert self._auth is not None
            r = self._send(method, url, body, {**sent, "Authorization": self._auth})
        try:
            yield r
        finally:
            r.close()

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        try:
            req = self._http.build_request(method, url, content=body, headers=headers)
            return self._http.send(req, stream=True)
        except httpx.TimeoutException as exc:
            raise SourceError(f"{self.conn.host}: timed out after {self.conn.timeout_s:g} s",
                              SyncReason.TIMEOUT) from exc  # fmt: skip
        except httpx.TransportError as exc:
            raise SourceError(f"{self.conn.host}: {exc or type(exc).__name__}",
                              SyncReason.UNREACHABLE) from exc  # fmt: skip

    def _login(self, r: httpx.Response) -> bool:
        """Answer a 401's challenge with our credentials; False when there is nothing to try."""
        user, password = self.conn.username, self.conn.password
        if user is None or password is None:
            return False
        challenge = r.headers.get("www-authenticate", "")
        basic = httpx.BasicAuth(user, password)
        header = next(basic.auth_flow(httpx.Request("GET", "http://x/"))).headers["Authorization"]
        if challenge.lower().startswith("basic"):
            if self._auth == header:
                return False  # these credentials were refused already
            self._auth = header
            return True
        if challenge.lower().startswith("bearer"):
            params = dict(_CHALLENGE.findall(challenge))
            realm = params.pop("realm", "")
            if not realm:
                return False
            try:
                answer = self._http.get(realm, params=params, headers={"Authorization": header})
            except httpx.HTTPError as exc:
                raise SourceError(f"token service: {exc}", SyncReason.UNREACHABLE) from exc
            if answer.status_code != 200:
                return False
            data = answer.json()
            token = (
                (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
            )
            if not isinstance(token, str):
                return False
            self._auth = f"Bearer {token}"
            return True
        return False

    def _expect(self, r: httpx.Response, status: int, what: str) -> None:
        if r.status_code == status:
            return
        if r.status_code in (401, 403):
            who = "without credentials" if self.conn.username is None else "with the credentials"
            raise SourceError(f"{what}: the registry refused access {who} ({r.status_code})",
                              SyncReason.AUTH_REFUSED)  # fmt: skip
        if r.status_code == 404:
            raise SourceError(f"{what}: not found in the registry", SyncReason.NOT_FOUND)
        raise SourceError(f"{what}: the registry answered {r.status_code}",
                          SyncReason.REGISTRY_ERROR)  # fmt: skip


def _overflow(seen: int, cap: int | None) -> SyncReason:
    """A manifest past its bound is not one of ours; a layer past the source's cap is too
    large; a layer past its declared size (under the cap) is not the blob it claims to be."""
    if cap is None:
        return SyncReason.BAD_MANIFEST
    return SyncReason.TOO_LARGE if seen > cap else SyncReason.DIGEST_MISMATCH
