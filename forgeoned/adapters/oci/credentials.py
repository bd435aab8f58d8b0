"""Registry credentials: one ``USER:PASSWORD`` line in a file, normally a systemd credential.

A source names a credential (``credentials = "registry-ops"``); the daemon reads
``$CREDENTIALS_DIRECTORY/registry-ops`` (``LoadCredential=registry-ops:/etc/forgeoned/…``
in a drop-in, or a Kubernetes Secret mounted as that directory) at every sync, so a rotated
secret is used without a restart. The password is never logged, audited or shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from forgeoned.errors import SourceError, SyncReason

MAX_CREDENTIAL_BYTES: Final = 8192


def read_credentials(path: Path) -> tuple[str, str]:
    """``(user, password)`` from ``path``; a :class:`SourceError` (credentials_unreadable)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CREDENTIAL_BYTES + 1)
    except OSError as exc:
        raise SourceError(f"credential {path}: {exc.strerror or exc}",
                          SyncReason.CREDENTIALS) from exc  # fmt: skip
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    user, colon, password = text.partition(":")
    if len(raw) > MAX_CREDENTIAL_BYTES or not colon or not user or "\n" in text:
        raise SourceError(f"credential {path}: expected one line USER:PASSWORD",
                          SyncReason.CREDENTIALS)  # fmt: skip
    return user, password
