"""One module per technology: wasmtime, watchdog, prometheus, journald, sockets, files."""
