"""forgeoned: a plugin manager daemon hosting signed, sandboxed WebAssembly plugins."""

from __future__ import annotations

__version__ = "0.1.0"
