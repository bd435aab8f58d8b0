"""Signing a staging attestation (``forgeonectl promote``): the in-toto Statement of
:mod:`forgeoned.core.attestation`, DSSE-signed with an Ed25519 key (a wasmsign2 key file)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from forgeoned.adapters.crypto.ed25519 import SecretKey
from forgeoned.core.attestation import PAYLOAD_TYPE, envelope, pae, statement
from forgeoned.core.trust import fingerprint


def sign_attestation(
    key: SecretKey,
    name: str,
    version: str,
    sha256: str,
    evidence: Mapping[str, Any],
    expires: float,
) -> bytes:
    """The DSSE envelope (JSON bytes) binding ``sha256`` to ``evidence`` until ``expires``."""
    body = json.dumps(statement(name, version, sha256, evidence, expires), sort_keys=True).encode()
    return envelope(body, fingerprint(key.public_key), key.sign(pae(PAYLOAD_TYPE, body)))
