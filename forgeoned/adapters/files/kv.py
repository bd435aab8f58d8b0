"""The durable per-plugin key-value store behind the `kv_*` host functions.

One append-only log file per plugin (``kv.log`` in the plugin's directory): every `set` and
`delete` appends one record and fsyncs it before returning, so a value a plugin was told is
stored survives a crash. Each record carries a CRC32; on open, a torn or corrupt tail (a crash
in the middle of an append) is cut off and everything before it is kept. When the log grows
well past the live data it is compacted with an atomic rewrite.

Record layout (little endian): ``op u8 | key_len u32 | value_len u32 | key | value | crc32 u32``
where the CRC covers everything before it in the record.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Final

from forgeoned.adapters.files.atomic import atomic_write
from forgeoned.errors import KvQuotaError, StateError

LOG_NAME: Final = "kv.log"
MAX_KEY_BYTES: Final = 1024
_HEADER: Final = struct.Struct("<BII")
_CRC: Final = struct.Struct("<I")
_OP_SET: Final = 1
_OP_DELETE: Final = 2
_COMPACT_SLACK: Final = 64 * 1024


def _record(op: int, key: bytes, value: bytes) -> bytes:
    body = _HEADER.pack(op, len(key), len(value)) + key + value
    return body + _CRC.pack(zlib.crc32(body))


class KvStore:
    """Durable per-plugin store with a quota on the live bytes (keys + values)."""

    def __init__(self, directory: Path, quota_bytes: int) -> None:
        self._path = directory / LOG_NAME
        self._quota = quota_bytes
        self._lock = threading.Lock()
        self._data: dict[bytes, bytes] = {}
        self._used = 0
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._log_bytes = self._load()
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open kv store {self._path}: {exc}") from exc
        self._fd: int | None = fd

    def _load(self) -> int:
        """Replay the log into memory; returns the length of its intact prefix."""
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return 0
        offset = 0
        while offset + _HEADER.size <= len(raw):
            op, klen, vlen = _HEADER.unpack_from(raw, offset)
            end = offset + _HEADER.size + klen + vlen
            if op not in (_OP_SET, _OP_DELETE) or end + _CRC.size > len(raw):
                break
            (crc,) = _CRC.unpack_from(raw, end)
            if crc != zlib.crc32(raw[offset:end]):
                break
            key = raw[offset + _HEADER.size : offset + _HEADER.size + klen]
            self._apply(op, key, raw[end - vlen : end])
            offset = end + _CRC.size
        if offset != len(raw):  # torn tail from a crash mid-append: keep the intact prefix
            with self._path.open("r+b") as handle:
                handle.truncate(offset)
                os.fsync(handle.fileno())
        return offset

    def _apply(self, op: int, key: bytes, value: bytes) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._used -= len(key) + len(old)
        if op == _OP_SET:
            self._data[key] = value
            self._used += len(key) + len(value)

    def _append(self, record: bytes) -> None:
        if self._fd is None:
            raise StateError(f"kv store {self._path} is closed")
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            raise StateError(f"cannot write kv store {self._path}: {exc}") from exc
        self._log_bytes += len(record)

    def _maybe_compact(self) -> None:
        if self._log_bytes <= 2 * self._used + _COMPACT_SLACK or self._fd is None:
            return
        snapshot = b"".join(_record(_OP_SET, k, v) for k, v in self._data.items())
        atomic_write(self._path, snapshot)
        os.close(self._fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        self._log_bytes = len(snapshot)

    @staticmethod
    def _check_key(key: bytes) -> None:
        if not 0 < len(key) <= MAX_KEY_BYTES:
            raise ValueError(f"kv key must be 1..{MAX_KEY_BYTES} bytes, got {len(key)}")

    def get(self, key: bytes) -> bytes | None:
        self._check_key(key)
        with self._lock:
            return self._data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        """Store ``value``; durable when this returns. Raises :class:`KvQuotaError`."""
        self._check_key(key)
        with self._lock:
            old = self._data.get(key)
            after = self._used + len(key) + len(value)
            if old is not None:
                after -= len(key) + len(old)
            if after > self._quota:
                raise KvQuotaError(
                    f"kv quota exceeded: {after} bytes would be stored, quota is {self._quota}"
                )
            self._append(_record(_OP_SET, key, value))
            self._apply(_OP_SET, key, value)
            self._maybe_compact()

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; returns False (and writes nothing) when it was not there."""
        self._check_key(key)
        with self._lock:
            if key not in self._data:
                return False
            self._append(_record(_OP_DELETE, key, b""))
            self._apply(_OP_DELETE, key, b"")
            self._maybe_compact()
            return True

    def used_bytes(self) -> int:
        with self._lock:
            return self._used

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> KvStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
