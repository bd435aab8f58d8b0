"""forgeonectl ``keys generate``, ``keys list`` and ``keys show``: signing keys and the trust.

``keys list`` shows the keys the running daemon trusts (``GET /v1/keys``), or, offline, those a
trust directory holds under a config's ``[trust]`` table (``--trust DIR``, ``--config TOML``);
each with its name, wasmsign2 key id, ``SHA256:`` fingerprint, scopes and expiry. ``keys show
FILE`` describes one key file (a public key, or the public half of a secret key): the same
facts plus the hex public key that ``[trust] revoked`` takes. The binary ``.pub`` format is
unreadable to a human; these are how an administrator checks which key is which.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.crypto.keys import (
    PUBLIC_TAG,
    SECRET_TAG,
    decode_public_key,
    generate_keypair,
    load_secret_key,
    load_trust_dir,
)
from forgeoned.cli.artifacts import read_file, trust_config
from forgeoned.cli.exitcodes import OK
from forgeoned.cli.output import table
from forgeoned.core.trust import TrustedKey
from forgeoned.daemon.config_file import load_config

MAX_KEY_FILE = 4096


def register(sub: argparse._SubParsersAction[Any]) -> None:
    keys = sub.add_parser("keys", help="signing keys and the trusted keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="create NAME.key (0600) and NAME.pub in DIR")
    gen.add_argument("--out", required=True, metavar="DIR")
    gen.add_argument("--name", default="signing", help="file name stem (%(default)s)")
    gen.set_defaults(func=cmd_generate)

    listing = keys_sub.add_parser(
        "list", help="trusted keys: the daemon's, or offline those of --trust/--config"
    )
    listing.add_argument("--trust", metavar="DIR", help="read this trust directory offline")
    listing.add_argument(
        "--config", metavar="TOML", help="offline: its trust_dir and [trust] scopes and expiry"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_list)

    show = keys_sub.add_parser("show", help="key id, fingerprint and hex of one key file")
    show.add_argument("file", metavar="FILE", help="NAME.pub, NAME.pem or NAME.key")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)


def cmd_generate(args: argparse.Namespace) -> int:
    secret, public = generate_keypair(Path(args.out), args.name)
    print(f"wrote {secret} (secret, mode 0600) and {public}")
    return OK


def _offline(args: argparse.Namespace) -> dict[str, Any]:
    if args.trust is not None:
        trust = load_trust_dir(Path(args.trust), trust_config(args.config))
    else:
        config = load_config(Path(args.config))
        trust = load_trust_dir(config.trust_dir, config.trust)
    return {
        "keys": [k.describe() for k in trust.keys],
        "revoked": sorted(pk.hex() for pk in trust.revoked),
        "thresholds": dict(trust.thresholds),
    }


def cmd_list(args: argparse.Namespace) -> int:
    if args.trust is None and args.config is None:
        with ControlClient(args.socket) as client:
            answer = client.trusted_keys()
    else:
        answer = _offline(args)
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
        return OK
    rows = [
        {**k, "scopes": " ".join(k["scopes"]), "expires": k.get("not_after") or "never"}
        for k in answer.get("keys", [])
    ]
    if rows:
        print(table(rows, ("name", "key_id", "fingerprint", "scopes", "expires")))
    else:
        print("no trusted keys: every plugin is refused (production mode)")
    for pk in answer.get("revoked", []):
        print(f"revoked: {pk}")
    return OK


def describe_file(path: Path) -> dict[str, Any]:
    """A key file as ``keys show`` prints it (a secret key: only its public half)."""
    data = read_file(path, MAX_KEY_FILE)
    if len(data) == 65 and data[0] == SECRET_TAG:
        public_key = load_secret_key(path).public_key
        kind = "secret key (wasmsign2): its public half"
    else:
        public_key = decode_public_key(data, str(path))
        kind = "public key (wasmsign2 raw)" if data[0] == PUBLIC_TAG else "public key (SPKI PEM)"
    described = TrustedKey(path.stem, public_key).describe()
    return {"file": str(path), "format": kind, **described}


def cmd_show(args: argparse.Namespace) -> int:
    info = describe_file(Path(args.file))
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return OK
    for key in ("file", "name", "format", "key_id", "fingerprint", "public_key"):
        print(f"{key.replace('_', ' ') + ':':<14}{info[key]}")
    return OK
