"""The compile cache on disk: checked entries, LRU eviction under a size cap, in-use entries kept.

Real files in a temporary directory; the "native code" is opaque bytes (the cache neither
runs nor parses it), so sizes are exact and the order of eviction is the test's to choose.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from forgeoned.adapters.wasm.module_cache import CODE, META, CacheHit, ModuleCache, NativeCode
from forgeoned.core.clock import ManualClock
from forgeoned.core.module_interface import ExternDecl, ExternKind, ModuleInterface

INTERFACE = ModuleInterface((ExternDecl("memory", ExternKind.MEMORY),), (), memory_min_pages=1)
CODE_BYTES = 10_000


def native(tag: str) -> NativeCode:
    return NativeCode(INTERFACE, tag.encode().ljust(CODE_BYTES, b"\0"))


def sha(tag: str) -> str:
    return tag * 64  # any 64-character name does


def entry_size(cache: ModuleCache, tag: str) -> int:
    stem = cache.path(sha(tag)).name[: -len(CODE)]
    return sum((cache.directory / (stem + ext)).stat().st_size for ext in (CODE, META))


def fill(tmp: Path, clock: ManualClock, tags: str, max_bytes: int = 1 << 30) -> ModuleCache:
    """A cache holding an entry per tag, put in that order, one second apart."""
    cache = ModuleCache(tmp, max_bytes, clock)
    for tag in tags:
        cache.put(sha(tag), native(tag))
        clock.advance(1)
    return cache


def present(cache: ModuleCache, tags: str) -> str:
    return "".join(t for t in tags if cache.path(sha(t)).exists())


def read(hit: CacheHit | None) -> bytes:
    assert hit is not None
    with hit, open(hit.path, "rb") as f:
        return f.read()


def test_a_hit_is_the_checked_file_with_its_interface(tmp_path: Path) -> None:
    cache = fill(tmp_path, ManualClock(), "a")
    hit = cache.get(sha("a"))
    assert hit is not None and hit.interface == INTERFACE and hit.size == CODE_BYTES
    assert read(hit) == native("a").code
    assert cache.get(sha("b")) is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "meta"])
def test_a_damaged_entry_is_a_miss_and_is_deleted(tmp_path: Path, damage: str) -> None:
    cache = fill(tmp_path, ManualClock(), "ab")
    code = cache.path(sha("a"))
    if damage == "flip":
        raw = bytearray(code.read_bytes())
        raw[100] ^= 1
        code.write_bytes(bytes(raw))
    elif damage == "truncate":
        code.write_bytes(code.read_bytes()[:-1])
    else:
        code.with_suffix(META).write_bytes(b'{"format":2}\n[')
    size_before = cache.total_bytes
    assert cache.get(sha("a")) is None
    assert not code.exists() and not code.with_suffix(META).exists()
    assert cache.total_bytes == size_before - entry_size(cache, "b")  # only "b" is left
    assert read(cache.get(sha("b"))) == native("b").code


def test_eviction_takes_the_least_recently_used_first(tmp_path: Path) -> None:
    clock = ManualClock()
    cache = fill(tmp_path, clock, "abcd")
    read(cache.get(sha("a")))  # a is now the most recently used
    cache.max_bytes = 2 * entry_size(cache, "a")
    assert cache.trim(set) == [f"{sha(t)}.{cache.tag}" for t in "bc"]
    assert present(cache, "abcd") == "ad"
    assert cache.total_bytes == cache.max_bytes
    assert cache.trim(set) == []  # under the cap: nothing more goes


def test_an_entry_in_use_is_never_evicted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    cache = fill(tmp_path, clock, "abc")
    cache.max_bytes = entry_size(cache, "a")
    asked: list[int] = []

    def in_use() -> set[str]:
        asked.append(1)
        return {sha("a"), sha("b")}  # the two oldest

    with caplog.at_level(logging.WARNING, logger="forgeoned"):
        assert cache.trim(in_use) == [f"{sha('c')}.{cache.tag}"]
        assert cache.trim(in_use) == []
    assert present(cache, "abc") == "ab"  # over the cap, but both are in use
    assert cache.total_bytes == 2 * cache.max_bytes
    assert len(asked) == 2
    assert [r.message for r in caplog.records].count(
        f"compile cache: {cache.total_bytes} bytes in use, over compile.cache_max_bytes = "
        f"{cache.max_bytes} (entries in use are never evicted)"
    ) == 1  # said once, not at every trim
    cache.max_bytes = 10 * cache.max_bytes
    assert cache.trim(lambda: pytest.fail("not asked when under the cap")) == []


def test_the_lru_order_survives_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    first = fill(tmp_path, clock, "abc")
    clock.advance(60)  # on disk, the order is kept to the minute
    read(first.get(sha("a")))
    again = ModuleCache(tmp_path, 1 << 30, clock)
    assert again.total_bytes == first.total_bytes
    again.max_bytes = entry_size(again, "a")
    again.trim(set)
    assert present(again, "abc") == "a"


def test_strays_go_before_any_current_entry(tmp_path: Path) -> None:
    clock = ManualClock()
    (tmp_path / f"{sha('o')}.wasmtime-0.0.1.cwasm").write_bytes(b"x" * 100)  # another engine
    (tmp_path / f"{sha('p')}.wasmtime-0.0.1{CODE}").write_bytes(b"old single-file format")
    (tmp_path / f".{sha('q')}.tmp").write_bytes(b"a crashed put")
    strays = sorted(os.listdir(tmp_path))
    for stray in strays:
        os.utime(tmp_path / stray, (clock.wall() + 100, clock.wall() + 100))  # newest of all
    cache = fill(tmp_path, clock, "ab")
    cache.max_bytes = cache.total_bytes - sum((tmp_path / s).stat().st_size for s in strays)
    assert sorted(cache.trim(set)) == strays
    assert present(cache, "ab") == "ab"
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"{sha(t)}.{cache.tag}{ext}" for t in "ab" for ext in (CODE, META)
    )


def test_a_put_over_a_stray_of_the_same_name_counts_once(tmp_path: Path) -> None:
    cache = ModuleCache(tmp_path, 1 << 30, ManualClock())
    cache.path(sha("a")).write_bytes(b"an entry of the old single-file format")
    cache = ModuleCache(tmp_path, 1 << 30, ManualClock())
    assert cache.get(sha("a")) is None  # no meta: a miss, compiled and put again
    cache.put(sha("a"), native("a"))
    assert cache.total_bytes == entry_size(cache, "a")
    cache.max_bytes = 0
    cache.trim(set)
    assert cache.total_bytes == 0 and list(tmp_path.iterdir()) == []
