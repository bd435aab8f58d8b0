"""``forgeonectl new NAME --lang rust|c``: write a buildable plugin project.

The project holds the manifest, the source, a Makefile (build + package) and a copy of the
SDK (the Rust crate or the C header), so it builds offline wherever it is moved. The SDK is
taken from ``$FORGEONE_SDK_DIR``, the checkout this forgeonectl runs from, or
``/usr/share/forgeoned/sdk``, the first that has it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path
from typing import Any, Final

from forgeoned.cli import templates
from forgeoned.cli.exitcodes import OK
from forgeoned.core.manifest import NAME_RE
from forgeoned.errors import ForgeonedError

SDK_DIRS: Final = (Path(__file__).resolve().parents[2] / "sdk", Path("/usr/share/forgeoned/sdk"))
RUST_SDK: Final = Path("rust/forgeone-sdk")
C_HEADER: Final = Path("c/forgeone.h")


def sdk_dir() -> Path:
    """Where the SDK sources are (see the module docstring)."""
    override = os.environ.get("FORGEONE_SDK_DIR")
    candidates = (Path(override),) if override else SDK_DIRS
    for candidate in candidates:
        if (candidate / C_HEADER).is_file() and (candidate / RUST_SDK / "Cargo.toml").is_file():
            return candidate
    raise ForgeonedError(
        f"SDK not found in {', '.join(map(str, candidates))} (set FORGEONE_SDK_DIR)"
    )


def crate_name(name: str) -> str:
    """A Cargo package name for plugin ``name`` (letters, digits, ``-``; not a digit first)."""
    crate = re.sub(r"[^a-z0-9-]", "-", name)
    return crate if crate[0].isalpha() else f"plugin-{crate}"


def type_name(name: str) -> str:
    """A Rust type name for plugin ``name``: ``rate-limiter`` -> ``RateLimiter``."""
    words = [w for w in re.split(r"[^a-z0-9]+", name) if w]
    joined = "".join(w[:1].upper() + w[1:] for w in words)
    return joined if joined[0].isalpha() else f"Plugin{joined}"


def project_files(name: str, lang: str) -> dict[str, str]:
    """The text files of a ``lang`` project for plugin ``name``, by relative path."""
    values = {"name": name, "crate": crate_name(name), "type_name": type_name(name)}
    files = {"manifest.toml": templates.MANIFEST, ".gitignore": templates.GITIGNORE}
    if lang == "rust":
        files |= {
            "Cargo.toml": templates.RUST_CARGO,
            "src/lib.rs": templates.RUST_LIB,
            "Makefile": templates.RUST_MAKEFILE,
        }
    else:
        files |= {"plugin.c": templates.C_SOURCE, "Makefile": templates.C_MAKEFILE}
    return {path: text.format(**values) for path, text in files.items()}


def create_project(directory: Path, name: str, lang: str) -> None:
    """Write the project into ``directory`` (which must not exist yet)."""
    if not NAME_RE.fullmatch(name):
        raise ForgeonedError(f"invalid plugin name {name!r} (expected {NAME_RE.pattern})")
    sdk = sdk_dir()
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        raise ForgeonedError(f"{directory} already exists") from None
    except OSError as exc:
        raise ForgeonedError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    for relative, text in project_files(name, lang).items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if lang == "rust":
        shutil.copytree(
            sdk / RUST_SDK,
            directory / "forgeone-sdk",
            ignore=shutil.ignore_patterns("target", "Cargo.lock"),
        )
    else:
        shutil.copyfile(sdk / C_HEADER, directory / "forgeone.h")


def _new(args: argparse.Namespace) -> int:
    directory = Path(args.dir or args.name)
    create_project(directory, args.name, args.lang)
    print(f"created {args.lang} plugin {args.name} in {directory}/ (build it with: make)")
    return OK


def register(sub: argparse._SubParsersAction[Any]) -> None:
    new = sub.add_parser("new", help="write a buildable plugin project (manifest, source, SDK)")
    new.add_argument("name", metavar="NAME", help="the plugin's name (its manifest identity)")
    new.add_argument("--lang", required=True, choices=("rust", "c"))
    new.add_argument("--dir", metavar="DIR", help="where to write it (default: ./NAME)")
    new.set_defaults(func=_new)
