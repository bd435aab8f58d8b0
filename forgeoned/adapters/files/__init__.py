"""The file system: plugins.d watcher, safe artifact reading, atomic writes, state store, kv."""
