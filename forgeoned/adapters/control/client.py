"""A small blocking client of the control API (stdlib ``http.client`` over a Unix socket).

Answers come back as parsed JSON (or raw bytes for ``invoke``); an error answer is raised as
the :class:`ForgeonedError` subclass its ``code`` stands for (never guessed from the HTTP
status: two 503s, ``busy`` and ``unavailable``, are different errors), so forgeonectl's exit
codes follow the daemon's verdict; an ``application_error`` comes back with the plugin's
status and output (:mod:`forgeoned.adapters.control.answers`). A socket that cannot be
reached raises :class:`UnreachableError` ("cannot reach forgeoned at SOCK: ...", exit code 4).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode

from forgeoned import errors
from forgeoned.adapters.control.answers import application_error


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """One keep-alive connection to the daemon; ``timeout`` bounds each socket operation."""

    def __init__(self, socket_path: str, timeout: float | None = 300.0) -> None:
        self.socket_path = socket_path
        self._conn = _UnixConnection(socket_path, timeout)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request; JSON answers are parsed, octet-stream answers returned as bytes."""
        target = path + (f"?{urlencode(query)}" if query else "")
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = content_type
        with self._transport("bad answer from {where}"):
            self._conn.request(method, target, body=body, headers=headers)
            resp = self._conn.getresponse()
            data = resp.read()
        kind = resp.getheader("Content-Type", "")
        if resp.status >= 400:
            raise _error_from(resp.status, data)
        if kind.startswith("application/json"):
            return json.loads(data)
        return data

    def lines(self, method: str, path: str, query: dict[str, str] | None = None) -> Iterator[bytes]:
        """A streamed answer line by line, as it arrives (a long one never all in memory).

        An answer that ends early (the daemon failed part way, or was stopped) raises
        :class:`UnreachableError` after the lines that did arrive."""
        target = path + (f"?{urlencode(query)}" if query else "")
        with self._transport("the answer from {where} ended early"):
            self._conn.request(method, target)
            resp = self._conn.getresponse()
            if resp.status >= 400:
                raise _error_from(resp.status, resp.read())
            while line := resp.readline():
                if not line.endswith(b"\n"):
                    raise http.client.IncompleteRead(line)
                yield line
            # readline() reports EOF before the last chunk as a plain end: only http.client's
            # chunk_left tells the two apart (None once the last chunk was read).
            if resp.chunked and resp.chunk_left is not None:
                raise http.client.IncompleteRead(b"")

    @contextmanager
    def _transport(self, broken: str) -> Iterator[None]:
        """Socket and protocol failures inside as :class:`UnreachableError` (exit code 4);
        ``broken`` words a malformed or cut answer, ``{where}`` standing for the daemon."""
        try:
            yield
        except OSError as exc:
            self._conn.close()
            raise errors.UnreachableError(
                f"cannot reach forgeoned at {self.socket_path}: {exc.strerror or exc}{_hint(exc)}"
            ) from exc
        except http.client.HTTPException as exc:
            self._conn.close()
            raise errors.UnreachableError(
                broken.format(where=f"forgeoned at {self.socket_path}") + f" ({type(exc).__name__})"
            ) from exc

    # --- one method per API call -----------------------------------------------------------

    def list_plugins(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/plugins")["plugins"])

    def show(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/plugins/{quote(name)}"))

    def install(
        self,
        data: bytes,
        filename: str,
        detached: bytes | None = None,
        wait_s: float | None = None,
        attestation: bytes | None = None,
    ) -> dict[str, Any]:
        """Upload an artifact (with its detached signature); ``wait_s`` bounds the wait for
        its outcome (0: none; None: the daemon's default). ``outcome`` in the answer is
        ``running`` (201) or ``pending`` (202); a refusal raises its error."""
        query = {"filename": filename}
        if wait_s is not None:
            query["wait"] = f"{wait_s:g}"
        headers = {}
        if detached is not None:
            headers["X-Forgeone-Signature"] = base64.b64encode(detached).decode("ascii")
        if attestation is not None:
            headers["X-Forgeone-Attestation"] = base64.b64encode(attestation).decode("ascii")
        answer = self.request(
            "POST", "/v1/plugins", data, query, content_type="application/wasm", headers=headers
        )
        return dict(answer)

    def remove(self, name: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/v1/plugins/{quote(name)}"))

    def action(self, name: str, verb: str) -> dict[str, Any]:
        """``verb`` is one of pause, resume, restart, reset."""
        return dict(self.request("POST", f"/v1/plugins/{quote(name)}/{verb}", b""))

    def retry(self, name: str) -> dict[str, Any]:
        """Let the refused versions of ``name`` try again; a new refusal raises its error."""
        return dict(self.request("POST", f"/v1/plugins/{quote(name)}/retry", b""))

    def invoke(
        self, name: str, data: bytes, wait_s: float | None = None, function: str | None = None
    ) -> bytes:
        """The plugin's output; :class:`~forgeoned.errors.ApplicationError` (with its status
        and output) when it answered non-zero. A paused plugin fails at once unless
        ``wait_s`` is given (then the call waits up to that long). ``function``: a named
        function of the manifest instead of ``handle``."""
        query: dict[str, str] = {}
        if wait_s is not None:
            query["wait"] = repr(float(wait_s))
        if function is not None:
            query["fn"] = function
        out = self.request(
            "POST",
            f"/v1/plugins/{quote(name)}/invoke",
            data,
            query or None,
            "application/octet-stream",
        )
        return out if isinstance(out, bytes) else json.dumps(out).encode()

    def allow_downgrade(self, name: str, version: str) -> dict[str, Any]:
        body = json.dumps({"version": version}).encode()
        return dict(self.request("POST", f"/v1/plugins/{quote(name)}/allow-downgrade", body))

    def evidence(self, name: str) -> dict[str, Any]:
        """A staging daemon's evidence of ``name`` (what ``promote`` signs)."""
        return dict(self.request("GET", f"/v1/plugins/{quote(name)}/evidence"))

    def review(self, name: str, note: str) -> dict[str, Any]:
        body = json.dumps({"note": note}).encode()
        return dict(self.request("POST", f"/v1/plugins/{quote(name)}/review", body))

    def trusted_keys(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/keys"))

    def rejected_files(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/rejections")["rejected"])

    def reload(self) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/reload", b""))

    def sources(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/sources")["sources"])

    def pull(self, name: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/sources/{quote(name)}/pull", b""))

    def audit_entries(self, since: float | None = None) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_lines("ndjson", since)]

    def audit_lines(self, fmt: str, since: float | None = None) -> Iterator[bytes]:
        """The audit log streamed, one JSON line per entry: ``ndjson`` the entries as stored,
        ``ocsf`` OCSF 1.8.0 events (built by the daemon)."""
        query = {"format": fmt, **({"since": repr(since)} if since is not None else {})}
        return self.lines("GET", "/v1/audit", query)

    def audit_follow(
        self, fmt: str = "json", from_seq: int | None = None, *, calls: bool = False
    ) -> Iterator[bytes]:
        """``GET /v1/audit/follow``: one line per entry as they become durable, for ever (a
        line ``{"error": …}`` ends it; so does the daemon stopping, as UnreachableError).
        ``calls``: each plugin call too, as a live record without a seq."""
        query = {"format": fmt, **({"from_seq": str(from_seq)} if from_seq is not None else {})}
        if calls:
            query["calls"] = "1"
        return self.lines("GET", "/v1/audit/follow", query)

    def audit_accept_gap(self) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/audit/accept-gap", b""))

    def audit_rotate_key(self) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/audit/rotate-key", b""))

    def audit_verify(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/audit/verify"))

    def compliance(self, since: float | None = None, fmt: str = "md") -> bytes:
        """The compliance report, rendered by the daemon (Markdown or JSON text)."""
        query = {"format": fmt, **({"since": repr(since)} if since is not None else {})}
        out = self.request("GET", "/v1/compliance", query=query)
        return out if isinstance(out, bytes) else json.dumps(out, indent=2).encode()

    def whoami(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/whoami"))


def _hint(exc: OSError) -> str:
    """What to do about a socket that cannot be reached, for the usual two reasons."""
    if isinstance(exc, PermissionError):
        return (
            " (use sudo, or join the group forgeoned: sudo usermod -aG forgeoned $USER, "
            "then log out and in again)"
        )
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return " (is it running? systemctl status forgeoned)"
    return ""


def _error_from(status: int, data: bytes) -> errors.ForgeonedError:
    """The error of an answer: by its JSON ``code``; the status only names a garbled body."""
    try:
        error = json.loads(data)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return errors.ForgeonedError(f"HTTP {status}: {data[:200]!r}")
    if code == errors.ApplicationError.reason and isinstance(error, dict):
        return application_error(error, message)  # with the plugin's status and output
    return errors.error_from_code(code, message)
