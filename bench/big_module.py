"""One plugin with ~97 MB of native code: what it costs the daemon's own memory.

Runs the real ``python -m forgeoned.daemon`` of each code tree given (``--tree NAME=PATH``, the
daemon gets ``PYTHONPATH=PATH``) on the same signed plugin, generated here (no binary is kept
in the repository): its wasm has ``--funcs`` functions of 1,000 ``i64.div_s`` each, ≈23 KB of
native code per function. For each tree, in order:

1. start with the plugin in plugins.d and an empty compile cache (it is compiled): RSS at
   READY=1 (``VmRSS`` split into anonymous, file-backed and shared memory);
2. remove it through the control API: RSS, and what the compile cache still holds;
3. put it back and start again, warm cache (what a restart costs): RSS at READY=1.

Run: ``.venv/bin/python bench/big_module.py --tree before=/path/a --tree after=. [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.daemon_common import KEY, layout, scratch
from bench.scale import start_to_ready
from forgeoned.adapters.control.client import ControlClient
from forgeoned.cli.devtools import package_plugin, sign_bytes

I32, I64 = 0x7F, 0x7E
LIFECYCLE = ("init", "start", "stop", "pause", "resume", "unload")


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def _section(ident: int, payload: bytes) -> bytes:
    return bytes([ident]) + _leb(len(payload)) + payload


def _name(text: str) -> bytes:
    return _leb(len(text)) + text.encode()


def _body(locals_: bytes, code: bytes) -> bytes:
    body = locals_ + code + b"\x0b"
    return _leb(len(body)) + body


def big_wasm(funcs: int, ops: int = 1000) -> bytes:
    """An ABI v1 module (lifecycle exports returning 0) plus ``funcs`` unexported functions
    of ``ops`` times ``i64.div_s``, encoded directly (the WAT text would be ~200 MB)."""
    types = [b"\x60\x00\x01\x7f", b"\x60\x01\x7f\x01\x7f", b"\x60\x02\x7f\x7f\x01\x7f"]
    kinds = [0] * len(LIFECYCLE) + [1, 2] + [2] * funcs  # lifecycle, alloc, handle, big ones
    zero = _body(b"\x00", b"\x41\x00")  # i32.const 0
    alloc = _body(b"\x00", b"\x41\x80\x08")  # i32.const 1024
    op = b"\x20\x02\x20\x03\x7f\x21\x02"  # local.get 2, local.get 3, i64.div_s, local.set 2
    big = _body(_vec([_leb(2) + bytes([I64])]), op * ops + b"\x20\x00")
    exports = [_name("memory") + b"\x02\x00"]
    exports += [_name(n) + b"\x00" + _leb(i) for i, n in enumerate(LIFECYCLE)]
    exports += [_name("alloc") + b"\x00" + _leb(6), _name("handle") + b"\x00" + _leb(7)]
    return b"".join(
        [
            b"\0asm\x01\0\0\0",
            _section(1, _vec(types)),
            _section(3, _vec([_leb(k) for k in kinds])),
            _section(5, _vec([b"\x00\x01"])),
            _section(7, _vec(exports)),
            _section(10, _vec([zero] * len(LIFECYCLE) + [alloc, zero] + [big] * funcs)),
        ]
    )


def memory(pid: int) -> dict[str, float]:
    """VmRSS and its parts, MiB."""
    fields = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def cache_mib(root: Path) -> float:
    return round(sum(p.stat().st_size for p in (root / "cache").iterdir()) / 2**20, 1)


def one_tree(tree: str, artifact: bytes, extra: str) -> dict[str, Any]:
    with scratch() as root:
        config = layout(root, extra)
        (root / "plugins.d/big.wasm").write_bytes(artifact)
        env = {"PYTHONPATH": tree}
        cold = start_to_ready(root, config, env=env, probe=memory, during=_remove)
        (root / "plugins.d/big.wasm").write_bytes(artifact)
        warm = start_to_ready(root, config, env=env, probe=memory)
        return {"cold": cold, "warm": warm, "cache_mib_end": cache_mib(root)}


def _remove(root: Path, pid: int) -> dict[str, Any]:
    with ControlClient(str(root / "run/control.sock")) as client:
        client.remove("big")
    return {"after_remove": memory(pid), "cache_mib_after_remove": cache_mib(root)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--funcs", type=int, default=4300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wasm = big_wasm(args.funcs)
    manifest = {"name": "big", "version": "1.0.0", "abi": 1}
    artifact = sign_bytes(package_plugin(wasm, manifest), KEY)
    # compiling ~30 MB of wasm needs more than the default worker limits
    extra = "[compile]\ncpu_seconds = 600\nmemory_bytes = 17179869184\ntimeout_s = 1200\n"
    trees: dict[str, Any] = {}
    results = {"wasm_mib": round(len(wasm) / 2**20, 1), "trees": trees}
    for spec in args.tree:
        name, _, path = spec.partition("=")
        trees[name] = one_tree(os.path.abspath(path), artifact, extra)
        if not args.json:
            print(name, json.dumps(trees[name]), flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
