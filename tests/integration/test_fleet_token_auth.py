"""The registry token flow (``Bearer`` challenge, token from the realm) on the pull path.

Debian's ``docker-registry`` here offers htpasswd (Basic) only; its token mode needs a token
server issuing JWTs. So a small front of our own sits before the real registry and plays the
token service as the distribution spec describes it: any request without ``Bearer TOKEN``
gets a ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``; the realm trades
the Basic credential for the token; requests with the token are forwarded to the registry.
``forgeoned-fetch`` (the daemon's fetch code) syncs through it with the right credential and
fails ``auth_refused`` with a wrong one. What this does not prove: that a real token service
(Harbor, GitLab, a cloud registry) answers the way this front does."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from daemon_kit import Env, plugin
from fleet_kit import REPO, push, source_toml
from registry_kit import REGISTRY, registry

from forgeoned.daemon.fetch import main as fetch

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")

TOKEN = "t0ken-for-ops"
BASIC = "Basic " + base64.b64encode(b"ops:s3cret").decode()
KEPT = ("content-type", "docker-content-digest")


@contextmanager
def token_front(upstream: str) -> Iterator[tuple[str, list[str]]]:
    """(HOST:PORT of the front, the paths it was asked, in order)."""
    asked: list[str] = []

    class Front(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self) -> None:
            asked.append(self.path)
            auth = self.headers.get("Authorization", "")
            if self.path.startswith("/token?"):
                if auth != BASIC:
                    self._answer(401, {}, b"{}")
                else:
                    self._answer(200, {"Content-Type": "application/json"},
                                 json.dumps({"token": TOKEN}).encode())  # fmt: skip
                return
            if auth != f"Bearer {TOKEN}":
                host = self.headers.get("Host", "")  # the address the client used
                challenge = (f'Bearer realm="http://{host}/token",'
                             f'service="front",scope="repository:{REPO}:pull"')  # fmt: skip
                self._answer(401, {"WWW-Authenticate": challenge}, b"{}")
                return
            accept = {"Accept": self.headers.get("Accept", "*/*")}
            r = httpx.request(self.command, f"http://{upstream}{self.path}", headers=accept,
                              timeout=10)  # fmt: skip
            kept = {k: v for k, v in r.headers.items() if k.lower() in KEPT}
            self._answer(r.status_code, kept, r.content)

        do_GET = do_HEAD = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _fetch_with(env: Env, front: str, password: str) -> int:
    creds = env.root / "creds"
    creds.mkdir(mode=0o700, exist_ok=True)
    (creds / "registry").write_text(f"ops:{password}\n")
    (creds / "registry").chmod(0o600)
    env.write_config('credentials_dir = "creds"\n' + source_toml(
        "hello", f"oci://{front}/{REPO}:stable", credentials="registry"))  # fmt: skip
    return fetch(["--config", str(env.config), "--once"])


def test_a_bearer_token_registry_is_followed_and_a_wrong_password_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with registry(tmp_path / "registry") as reg, token_front(reg.host) as (front, asked):
        env = Env(tmp_path)
        push(reg, tmp_path, plugin("hello", "1.0.0"), "stable", env.root / "trusted.d")
        assert _fetch_with(env, front, "pw-Wr0ng") == 1
        err = capsys.readouterr().err
        assert "hello: auth_refused: " in err and "pw-Wr0ng" not in err, err
        assert not (env.plugins / "oci-hello.wasm").exists()
        asked.clear()
        assert _fetch_with(env, front, "s3cret") == 0
        assert "hello: synced hello 1.0.0 sha256:" in capsys.readouterr().err
        assert (env.plugins / "oci-hello.wasm").read_bytes() == plugin("hello", "1.0.0")
        # challenged once, the token fetched from the realm, then every request carried it
        assert asked[0].startswith(f"/v2/{REPO}/manifests/stable")
        assert asked[1].startswith("/token?") and "scope=repository" in asked[1]
        assert asked[2].startswith(f"/v2/{REPO}/manifests/stable")
        assert [p for p in asked[3:] if p.startswith("/token")] == []
