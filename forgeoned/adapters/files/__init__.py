"""The file system: the plugins.d watcher (``observer`` on watchdog, ``changes`` its timing),
safe artifact reading (``artifact_read``), atomic writes, state store, kv."""
