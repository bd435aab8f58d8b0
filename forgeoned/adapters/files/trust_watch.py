"""Watching the trust store: a changed key (or a ConfigMap's ``..data`` swap) asks for a reload.

Off unless ``trust_watch = true``: on a host, operators change keys and then reload, as
documented. In Kubernetes nobody is there to reload when a ConfigMap changes: the kubelet
writes the new keys into a fresh timestamped directory and renames a new ``..data`` link
over the old one, which is one ``moved`` event on ``..data`` (the key links themselves do
not change, so a watcher looking only at ``*.pub`` misses it). Either event (a key file or
``..data``) starts a quiet period; when nothing more changed for ``debounce_s``,
``on_change`` runs once (the daemon posts a full reload to its loop: StrictModes, the trust
store and the rescan, exactly as ``forgeonectl reload``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from forgeoned.adapters.files.projected import DATA_LINK
from forgeoned.adapters.files.strict_modes import is_key_file


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: TrustDirWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if not path or Path(path).parent != self.watcher.directory:
                continue
            name = Path(path).name
            if name == DATA_LINK or is_key_file(name):
                self.watcher.changed()
                return


class TrustDirWatcher:
    def __init__(
        self, directory: Path, on_change: Callable[[], None], debounce_s: float = 0.2
    ) -> None:
        self.directory = directory.absolute()
        self.on_change = on_change
        self.debounce_s = debounce_s
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._observer = Observer()
        self._observer.schedule(_Handler(self), str(self.directory), recursive=False)
        self._thread = threading.Thread(target=self._run, name="forgeoned-trust-watch", daemon=True)
        self.reported = 0  # how many reloads were asked for (tests read it)

    def start(self) -> None:
        self._observer.start()
        self._thread.start()

    def changed(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            # quiet period: the kubelet's swap is several events; report once, after them
            while self._wake.is_set() and not self._closed.is_set():
                self._wake.clear()
                self._closed.wait(self.debounce_s)
            if self._closed.is_set():
                return
            self.reported += 1
            self.on_change()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        self._observer.stop()
        self._observer.join(5)
        if self._thread.is_alive():
            self._thread.join(5)
