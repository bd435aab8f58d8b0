"""The per-plugin kv store on a real filesystem: durability, crash recovery, quota, compaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgeoned.adapters.files.kv import LOG_NAME, KvStore
from forgeoned.errors import KvQuotaError, StateError


def test_values_survive_reopening(tmp_path: Path) -> None:
    with KvStore(tmp_path, 1024) as kv:
        kv.set(b"a", b"1")
        kv.set(b"b", b"2")
        kv.set(b"a", b"3")
        assert kv.delete(b"b") is True
        assert kv.delete(b"missing") is False
    with KvStore(tmp_path, 1024) as kv:
        assert kv.get(b"a") == b"3"
        assert kv.get(b"b") is None
        assert kv.used_bytes() == 2


def test_quota_error_changes_nothing(tmp_path: Path) -> None:
    with KvStore(tmp_path, 10) as kv:
        kv.set(b"k", b"12345")
        size = (tmp_path / LOG_NAME).stat().st_size
        with pytest.raises(KvQuotaError, match="16 bytes would be stored, quota is 10"):
            kv.set(b"x", b"123456789")
        assert kv.get(b"k") == b"12345" and kv.get(b"x") is None
        assert kv.used_bytes() == 6
        assert (tmp_path / LOG_NAME).stat().st_size == size
        kv.set(b"k", b"123456789")  # replacing counts the difference only: 10 bytes fit


@pytest.mark.parametrize("cut", [1, 5, 13])
def test_torn_tail_is_cut_off_and_the_rest_kept(tmp_path: Path, cut: int) -> None:
    with KvStore(tmp_path, 1024) as kv:
        kv.set(b"first", b"kept")
        kv.set(b"second", b"torn")
    log = tmp_path / LOG_NAME
    data = log.read_bytes()
    log.write_bytes(data[:-cut])  # a crash in the middle of the second append
    with KvStore(tmp_path, 1024) as kv:
        assert kv.get(b"first") == b"kept"
        assert kv.get(b"second") is None
        kv.set(b"third", b"after")
    with KvStore(tmp_path, 1024) as kv:
        assert (kv.get(b"first"), kv.get(b"third")) == (b"kept", b"after")


def test_corrupt_record_stops_replay_there(tmp_path: Path) -> None:
    with KvStore(tmp_path, 1024) as kv:
        kv.set(b"a", b"1")
        kv.set(b"b", b"2")
    log = tmp_path / LOG_NAME
    data = bytearray(log.read_bytes())
    data[-6] ^= 0xFF  # flip a byte inside the last record: its CRC no longer matches
    log.write_bytes(bytes(data))
    with KvStore(tmp_path, 1024) as kv:
        assert kv.get(b"a") == b"1" and kv.get(b"b") is None


def test_compaction_keeps_live_data_and_bounds_the_log(tmp_path: Path) -> None:
    with KvStore(tmp_path, 1024) as kv:
        for i in range(3000):
            kv.set(b"counter", str(i).encode())
        assert (tmp_path / LOG_NAME).stat().st_size < 200_000
    with KvStore(tmp_path, 1024) as kv:
        assert kv.get(b"counter") == b"2999"


def test_bad_keys_and_closed_store(tmp_path: Path) -> None:
    kv = KvStore(tmp_path, 1024)
    with pytest.raises(ValueError, match="kv key must be"):
        kv.set(b"", b"x")
    with pytest.raises(ValueError, match="kv key must be"):
        kv.get(b"k" * 1025)
    kv.close()
    kv.close()
    with pytest.raises(StateError, match="is closed"):
        kv.set(b"k", b"v")


def test_unwritable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StateError, match="cannot open kv store"):
        KvStore(blocker / "kv", 10)
