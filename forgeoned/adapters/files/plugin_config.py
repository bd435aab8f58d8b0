"""Reading ``plugins.conf.d/NAME.toml`` and the credentials its secret keys name.

The file is the operator's; the daemon only reads it (never through a symlink, at most
64 KiB). A missing file means "defaults only". Every failure is a
:class:`~forgeoned.errors.PluginConfigError` whose one line names the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Final

from forgeoned.core.hooks_manifest import ConfigKey
from forgeoned.core.plugin_config import EffectiveConfig, resolve_config
from forgeoned.errors import PluginConfigError

MAX_FILE_BYTES: Final = 64 * 1024
MAX_CREDENTIAL_BYTES: Final = 64 * 1024


def _read(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` (None if it does not exist); OSError for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)


def read_operator_file(path: Path) -> dict[str, Any] | None:
    try:
        data = _read(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise PluginConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data is None:
        return None
    if len(data) > MAX_FILE_BYTES:
        raise PluginConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PluginConfigError(f"{path}: not valid TOML: {exc}") from None


class PluginConfigFiles:
    """The operator's per-plugin config files in ``directory``, credentials in ``credentials``."""

    def __init__(self, directory: Path, credentials: Path | None) -> None:
        self.directory = directory
        self.credentials = credentials

    def path(self, plugin: str) -> Path:
        return self.directory / f"{plugin}.toml"

    def _credential(self, name: str) -> str | None:
        if self.credentials is None:
            return None
        try:
            data = _read(self.credentials / name, MAX_CREDENTIAL_BYTES)
        except OSError:
            return None
        if data is None or len(data) > MAX_CREDENTIAL_BYTES:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def resolve(self, plugin: str, keys: tuple[ConfigKey, ...]) -> EffectiveConfig:
        """The effective config of ``plugin`` now; PluginConfigError naming file and key."""
        path = self.path(plugin)
        raw = read_operator_file(path)
        if not keys and raw is None:
            return EffectiveConfig()
        return resolve_config(keys, raw, str(path), self._credential)
