"""StrictModes for what the daemon trusts: its config file, trust store and credentials.

Like OpenSSH's ``StrictModes`` and sudo's checks on ``sudoers``: a file that decides what the
daemon trusts counts only if nobody but root or the daemon's own user could have changed it.
For each such path, the path itself and every directory the kernel walks through to reach it
(symlinks followed, so a link's directory and its target's directories are all walked) must
be owned by root or the daemon's uid; the path itself must not be writable by group or
others, and neither may a directory on the way unless it is sticky (``/tmp``: others may add
entries there but not rename ours). Inside the trust dir and the credentials dir, every entry
the daemon would read must be a regular file (a symlink there is refused, never followed)
owned and moded the same way. The one exception: a trust dir mounted from a Kubernetes
ConfigMap, whose exact link layout (``NAME -> ..data/NAME``, ``..data -> ..TIMESTAMP``, all
inside the trust dir) is accepted and its real directory and files checked instead
(:mod:`forgeoned.adapters.files.projected`).

:func:`check_trusted_inputs` lists the problems; :func:`enforce` turns them into a refusal
(:class:`InsecurePathError`, audited as ``config.insecure``) or, in development mode, into a
loud warning that is audited too.
"""

from __future__ import annotations

import enum
import errno
import functools
import logging
import os
import pwd
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from forgeoned.adapters.files.projected import projected_file
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.ports import AuditSink
from forgeoned.errors import ForgeonedError, InsecurePathError

log = logging.getLogger("forgeoned")
MAX_LINKS: Final = 40  # as the kernel's ELOOP limit
WRITABLE: Final = stat.S_IWGRP | stat.S_IWOTH
KEY_SUFFIXES: Final = (".pub", ".pem")


class Problem(enum.Enum):
    FOREIGN_OWNER = "foreign_owner"
    WRITABLE = "writable_by_others"
    SYMLINK = "symlink"
    NOT_REGULAR = "not_regular"


@dataclass(frozen=True, slots=True)
class Violation:
    path: Path
    problem: Problem
    detail: str  # what is wrong, e.g. "writable by group and others (mode 0666)"
    fix: str  # the command that fixes it

    def __str__(self) -> str:
        return f"{self.path}: {self.detail} (fix: {self.fix})"


def default_owners() -> frozenset[int]:
    """Who may own trusted files: root and the user the daemon runs as."""
    return frozenset({0, os.geteuid()})


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


@functools.lru_cache(maxsize=256)
def owner_actor(uid: int) -> str:
    """How the audit log names the owner of a file, as it names a control-API caller."""
    try:
        return f"uid={uid}({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid={uid}"


def _walk(path: Path) -> tuple[list[tuple[Path, os.stat_result]], Path]:
    """Every directory on the way to ``path`` with its ``lstat``, and the real path reached.

    Walks component by component as the kernel does: a symlink's target is walked from the
    directory holding the link, so the directories of every link and of its target are all
    listed (a link in a directory others may write is as unsafe as the file itself)."""
    root = Path("/")
    seen: list[tuple[Path, os.stat_result]] = [(root, os.lstat(root))]
    pending = list(reversed((Path.cwd() / path).parts[1:]))
    current, links = root, 0
    while pending:
        part = pending.pop()
        if part == "..":
            current = current.parent
            continue
        nxt = current / part
        st = os.lstat(nxt)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))
            target = nxt.readlink()
            if target.is_absolute():
                current = root
            pending.extend(reversed(target.parts[1:] if target.is_absolute() else target.parts))
            continue
        if pending:  # a directory on the way (the last one is ``path`` itself)
            seen.append((nxt, st))
        current = nxt
    return seen, current


def _owner_and_mode(path: Path, st: os.stat_result, owners: frozenset[int]) -> list[Violation]:
    found = []
    if st.st_uid not in owners:
        found.append(
            Violation(path, Problem.FOREIGN_OWNER, f"owned by {_user(st.st_uid)}, not by root "
                      "or the daemon's user", f"chown root {path}")
        )  # fmt: skip
    if st.st_mode & WRITABLE:
        who = {stat.S_IWGRP: "group", stat.S_IWOTH: "others", WRITABLE: "group and others"}
        mode = stat.S_IMODE(st.st_mode)
        found.append(
            Violation(path, Problem.WRITABLE, f"writable by {who[st.st_mode & WRITABLE]} "
                      f"(mode {mode:04o})", f"chmod go-w {path}")
        )  # fmt: skip
    return found


def check_path(path: Path, owners: frozenset[int]) -> list[Violation]:
    """Problems of ``path`` and of the directories leading to it; ``[]`` when it is missing
    or cannot be examined (whoever reads it reports that)."""
    try:
        directories, real = _walk(path)
        st = os.lstat(real)
    except OSError:
        return []
    found: list[Violation] = []
    for directory, dst in directories:
        sticky = bool(dst.st_mode & stat.S_ISVTX)
        found += [
            v for v in _owner_and_mode(directory, dst, owners)
            if not (sticky and v.problem is Problem.WRITABLE)
        ]  # fmt: skip
    return found + _owner_and_mode(real, st, owners)


def check_entries(
    directory: Path,
    owners: frozenset[int],
    wanted: Callable[[str], bool],
    projected: bool = False,
) -> list[Violation]:
    """Problems of the entries of ``directory`` whose names ``wanted`` selects; ``projected``
    accepts the Kubernetes ConfigMap link layout (:mod:`forgeoned.adapters.files.projected`)
    and checks the real directory and file it leads to instead."""
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError:
        return []
    found: list[Violation] = []
    for name in filter(wanted, names):
        path = directory / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        real = projected_file(directory, name) if projected and stat.S_ISLNK(st.st_mode) else None
        if real is not None:
            try:
                found += _owner_and_mode(real.parent, os.lstat(real.parent), owners)
                found += _owner_and_mode(real, os.lstat(real), owners)
            except FileNotFoundError:  # swapped meanwhile: the reload after the swap sees it
                continue
        elif stat.S_ISLNK(st.st_mode):
            found.append(
                Violation(path, Problem.SYMLINK, "is a symbolic link; only regular files are "
                          "read here, links are never followed",
                          f'cp --remove-destination "$(readlink -f {path})" {path}')
            )  # fmt: skip
        elif not stat.S_ISREG(st.st_mode):
            found.append(
                Violation(path, Problem.NOT_REGULAR, "is not a regular file",
                          f"move it out of {directory}")
            )  # fmt: skip
        else:
            found += _owner_and_mode(path, st, owners)
    return found


def is_key_file(name: str) -> bool:
    """The trust-dir entries ``load_trust_dir`` reads."""
    return not name.startswith(".") and name.endswith(KEY_SUFFIXES)


def check_trusted_inputs(
    config_file: Path | None,
    trust_dir: Path,
    credentials_dir: Path | None,
    owners: frozenset[int] | None = None,
    plugin_config_dir: Path | None = None,
) -> list[Violation]:
    """Every problem of the config file, the trust store, the credentials dir and the
    per-plugin config files (``plugin_config_dir/NAME.toml``: whoever changes them changes
    what a plugin is told, e.g. which endpoint it calls)."""
    owners = default_owners() if owners is None else owners
    found = check_path(config_file, owners) if config_file is not None else []
    found += check_path(trust_dir, owners)
    found += check_entries(trust_dir, owners, is_key_file, projected=True)
    if credentials_dir is not None:
        found += check_path(credentials_dir, owners)
        found += check_entries(credentials_dir, owners, lambda name: not name.startswith("."))
    if plugin_config_dir is not None:
        found += check_path(plugin_config_dir, owners)
        found += check_entries(plugin_config_dir, owners, is_plugin_config_file)
    return found


def is_plugin_config_file(name: str) -> bool:
    """The ``plugin_config_dir`` entries the daemon reads."""
    return not name.startswith(".") and name.endswith(".toml")


def _dedupe(violations: Iterable[Violation]) -> list[Violation]:
    return list(dict.fromkeys(violations))  # a shared parent directory is reported once


def judge(violations: list[Violation], *, development: bool) -> tuple[bool, str] | None:
    """None when nothing is unsafe; else whether to refuse, and the one-line message naming
    every path and its fix (a refusal in production, or for a link or a non-regular file)."""
    found = _dedupe(violations)
    if not found:
        return None
    structural = any(v.problem in (Problem.SYMLINK, Problem.NOT_REGULAR) for v in found)
    refuse = structural or not development
    text = "; ".join(str(v) for v in found)
    prefix = "refusing files others could change" if refuse else "INSECURE (development mode)"
    return refuse, f"{prefix}: {text}"


def enforce(violations: list[Violation], audit: AuditSink, *, development: bool) -> None:
    """Refuse (raise :class:`InsecurePathError`) when anything is unsafe; in development
    mode, only warn for owners and modes. Either way, one ``config.insecure`` audit event
    (which also reaches the journal) names every path and its fix."""
    verdict = judge(violations, development=development)
    if verdict is None:
        return
    refuse, message = verdict
    found = _dedupe(violations)
    details = {"paths": [str(v.path) for v in found], "problems": [v.problem.value for v in found]}
    try:
        audit.record(
            AuditEvent(EventName.CONFIG_INSECURE, reason=InsecurePathError.reason,
                       message=message, details=details)
        )  # fmt: skip
    except ForgeonedError as exc:  # an audit log that cannot be written does not lift a refusal
        log.error("cannot audit config.insecure (%s): %s", exc, message)  # noqa: TRY400
    if refuse:
        raise InsecurePathError(message)
    for violation in found:
        log.warning("development mode: trusting %s anyway; never do this in production", violation)
