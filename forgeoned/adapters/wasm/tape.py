"""Recorded host interactions (``forgeonectl run --record FILE`` / ``--replay FILE``).

A :class:`Tape` sits between a plugin's host functions and the world for everything that is
not determined by the plugin's input: the clock (``time_now_ms``), ``random_fill``,
``env_get``, ``secret_get``, ``kv_get`` and ``http_request``. Recording appends one entry per
interaction, in call order; replaying answers each from the next entry, and an interaction
that is not the one recorded (another function, another key) fails the call as a host error,
so a replay either reproduces the run or says where it diverged. Secrets are never written:
their entry says only whether one was found, and a replay reads them again (``--secret``).

File format (JSON): ``{"version": 1, "plugin": NAME, "interactions": [{"fn": "time_now_ms",
"value": 1733380000000}, {"fn": "random_fill", "data": BASE64}, {"fn": "env_get",
"key": "TZ", "value": "UTC"}, {"fn": "secret_get", "key": "token", "redacted": true},
{"fn": "kv_get", "key": BASE64, "data": BASE64 | null}, {"fn": "http_request", …}, …]}``
(``http_request`` entries: :mod:`forgeoned.adapters.wasm.tape_http`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from forgeoned.adapters.files.kv import KvStore
from forgeoned.core.ports import Clock
from forgeoned.errors import ConfigError, ReplayDivergedError

FORMAT_VERSION = 1


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes | None:
    return None if text is None else base64.b64decode(str(text))


class Tape:
    def __init__(self, plugin: str, replay: list[dict[str, Any]] | None = None) -> None:
        self.plugin = plugin
        self.entries: list[dict[str, Any]] = [] if replay is None else list(replay)
        self.replaying = replay is not None
        self._next = 0

    @classmethod
    def load(cls, path: Path, plugin: str) -> Tape:
        try:
            raw = json.loads(path.read_bytes())
            entries, version = raw["interactions"], raw.get("version")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a recorded run: {exc}") from None
        if version != FORMAT_VERSION or not isinstance(entries, list):
            raise ConfigError(f"{path}: not a recorded run (format version {version!r})")
        return cls(plugin, entries)

    def save(self, path: Path) -> None:
        doc = {"version": FORMAT_VERSION, "plugin": self.plugin, "interactions": self.entries}
        path.write_text(json.dumps(doc, indent=1) + "\n")

    @property
    def position(self) -> int:
        """How many interactions were replayed so far."""
        return self._next

    def _take(self, fn: str, key: str | None) -> dict[str, Any]:
        at = self._next
        entry = self.entries[at] if at < len(self.entries) else None
        if entry is None or entry.get("fn") != fn or entry.get("key") != key:
            got = "the end of the recording" if entry is None else f"{entry.get('fn')}"
            raise ReplayDivergedError(
                f"replay diverged at interaction {at + 1}: the plugin called {fn}"
                f"{'(' + key + ')' if key else ''}, the recording has {got}"
            )
        self._next += 1
        return entry

    def _put(self, fn: str, key: str | None, **fields: Any) -> None:
        self.entries.append({"fn": fn, **({"key": key} if key is not None else {}), **fields})

    # --- the wrapped sources -----------------------------------------------------------------

    def clock(self, inner: Clock) -> Clock:
        return _TapeClock(self, inner)

    def time_ms(self, live: Callable[[], float]) -> float:
        if self.replaying:
            return float(self._take("time_now_ms", None)["value"]) / 1000
        now = live()
        self._put("time_now_ms", None, value=int(now * 1000))
        return now

    def random(self, n: int) -> bytes:
        if self.replaying:
            return _unb64(self._take("random_fill", None)["data"]) or b""
        data = os.urandom(n)
        self._put("random_fill", None, data=_b64(data))
        return data

    def env(self, inner: Mapping[str, str]) -> Mapping[str, str]:
        return _TapeEnv(self, inner)

    def secret(self, live: Callable[[str], bytes | None]) -> Callable[[str], bytes | None]:
        def read(name: str) -> bytes | None:
            if self.replaying:
                self._take("secret_get", name)
                return live(name)
            value = live(name)
            self._put("secret_get", name, redacted=True, found=value is not None)
            return value

        return read

    def kv_get(self, key: bytes, live: Callable[[bytes], bytes | None]) -> bytes | None:
        k = _b64(key)
        if self.replaying:
            return _unb64(self._take("kv_get", k).get("data"))
        value = live(key)
        self._put("kv_get", k, data=_b64(value))
        return value


class _TapeClock:
    def __init__(self, tape: Tape, inner: Clock) -> None:
        self._tape = tape
        self._inner = inner

    def monotonic(self) -> float:
        return self._inner.monotonic()

    def wall(self) -> float:
        return self._tape.time_ms(self._inner.wall)


class _TapeEnv(Mapping[str, str]):
    def __init__(self, tape: Tape, inner: Mapping[str, str]) -> None:
        self._tape = tape
        self._inner = inner

    def get(self, key: str, default: Any = None) -> Any:
        if self._tape.replaying:
            return self._tape._take("env_get", key).get("value", default)
        value = self._inner.get(key)
        self._tape._put("env_get", key, value=value)
        return value if value is not None else default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)


class TapeKv(KvStore):
    """A kv store whose reads go through the tape (writes still land in its directory)."""

    def __init__(self, directory: Path, quota_bytes: int, tape: Tape) -> None:
        super().__init__(directory, quota_bytes)
        self._tape = tape

    def get(self, key: bytes) -> bytes | None:
        return self._tape.kv_get(key, super().get)
