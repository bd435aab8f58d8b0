"""A real OCI registry (Debian's ``docker-registry``, distribution 2.8) for integration tests.

Started on 127.0.0.1 at a free port with its own storage directory and config file (and an
htpasswd file when credentials are asked for), stopped and reaped after the test: no process
outlives it. Also raw helpers to publish *bad* artifacts (two layers, wrong media types, a
blob that does not match its descriptor) that ``forgeonectl push`` would never produce.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prom_kit import free_port
from waiting import poll_until

from forgeoned.core.oci import CONFIG_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE

REGISTRY = shutil.which("docker-registry")


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT
    auth: tuple[str, str] | None
    proc: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    def stop(self) -> None:
        """Stop the registry now (the "registry down" fault); idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def ref(self, repo: str, tag: str) -> str:
        return f"oci://{self.host}/{repo}:{tag}"

    def client(self) -> httpx.Client:
        auth = httpx.BasicAuth(*self.auth) if self.auth else None
        return httpx.Client(base_url=f"http://{self.host}/v2/", auth=auth, timeout=10)

    def put_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """Upload ``data``; ``digest`` lets a test name it wrongly (the registry checks it, so
        a lying descriptor is made in the manifest instead, see ``put_manifest``)."""
        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        with self.client() as c:
            r = c.post(f"{repo}/blobs/uploads/")
            assert r.status_code == 202, r.text
            loc = r.headers["location"]
            r = c.put(f"{loc}{'&' if '?' in loc else '?'}digest={digest}", content=data)
            assert r.status_code == 201, r.text
        return digest

    def put_manifest(self, repo: str, tag: str, manifest: dict[str, Any]) -> str:
        body = json.dumps(manifest).encode()
        with self.client() as c:
            r = c.put(f"{repo}/manifests/{tag}", content=body,
                      headers={"Content-Type": MANIFEST_MEDIA_TYPE})  # fmt: skip
            assert r.status_code == 201, r.text
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def publish_raw(
        self,
        repo: str,
        tag: str,
        layers: list[tuple[bytes, str]],
        config_type: str = CONFIG_MEDIA_TYPE,
        sizes: list[int] | None = None,
    ) -> str:
        """A manifest over these (data, media type) layers, as a third party might push it."""
        config = b'{"architecture":"wasm"}'
        cdigest = self.put_blob(repo, config)
        descs = []
        for i, (data, media) in enumerate(layers):
            size = sizes[i] if sizes else len(data)
            descs.append({"mediaType": media, "digest": self.put_blob(repo, data), "size": size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": config_type, "digest": cdigest, "size": len(config)},
            "layers": descs,
        }
        return self.put_manifest(repo, tag, manifest)

    def retag(self, repo: str, src_tag: str, dst_tag: str) -> None:
        """Point ``dst_tag`` at what ``src_tag`` names (moving a tag, as operators do)."""
        with self.client() as c:
            r = c.get(f"{repo}/manifests/{src_tag}", headers={"Accept": MANIFEST_MEDIA_TYPE})
            assert r.status_code == 200, r.text
            put = c.put(f"{repo}/manifests/{dst_tag}", content=r.content,
                        headers={"Content-Type": MANIFEST_MEDIA_TYPE})  # fmt: skip
            assert put.status_code == 201, put.text

    def delete(self, repo: str, tag: str) -> None:
        """Delete the manifest ``tag`` names (and with it every tag on it), as an operator
        cleaning up a repository might."""
        with self.client() as c:
            r = c.head(f"{repo}/manifests/{tag}", headers={"Accept": MANIFEST_MEDIA_TYPE})
            assert r.status_code == 200, r.text
            gone = c.delete(f"{repo}/manifests/{r.headers['docker-content-digest']}")
            assert gone.status_code == 202, gone.text


def _config(root: Path, port: int, htpasswd: Path | None, tls: tuple[Path, Path] | None) -> Path:
    auth = (
        f"auth:\n  htpasswd:\n    realm: forgeone-test\n    path: {htpasswd}\n" if htpasswd else ""
    )
    cert = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else ""
    path = root / "config.yml"
    path.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{cert}"
        f"{auth}"
    )
    return path


@contextmanager
def registry(
    root: Path, auth: tuple[str, str] | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[Registry]:
    """A running registry under ``root``; ``auth``: require these Basic credentials;
    ``tls``: serve HTTPS with this (certificate, key)."""
    assert REGISTRY is not None, "docker-registry is not installed (make setup)"
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if auth is not None:
        htpasswd = root / "htpasswd"
        hashed = subprocess.run(
            ["htpasswd", "-Bbn", auth[0], auth[1]], check=True, capture_output=True, text=True
        ).stdout
        htpasswd.write_text(hashed)
    port = free_port()
    with (root / "registry.log").open("wb") as log:
        proc = subprocess.Popen(
            [REGISTRY, "serve", str(_config(root, port, htpasswd, tls))],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        poll_until(lambda: _answers(port, tls), 30, "the registry to listen",
                   interval=0.05, tolerate=(OSError,))  # fmt: skip
        reg = Registry(f"127.0.0.1:{port}", auth, proc)
        yield reg
    finally:
        Registry("", None, proc).stop()


def _answers(port: int, tls: tuple[Path, Path] | None) -> bool:
    if tls is not None:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True  # listening (the handshake is the test's business)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as r:
            return bool(r.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code == 401  # up, and asking for credentials


LAYER = LAYER_MEDIA_TYPE


def self_signed(root: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA: pass it as ``ca_file``) and its key."""
    cert, key = root / "registry.crt", root / "registry.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
