"""wasmtime: runtime, instances, the fast call path, host link and ABI, compile workers, loader."""
