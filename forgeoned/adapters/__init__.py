"""One subpackage per technology: wasm, control, audit, metrics, files, crypto; sdnotify."""
