"""The Wasm OCI artifact layout: references, the manifest push writes, the checks a pull makes.

Layout (CNCF TAG Runtime "Wasm OCI artifact", as containerd, wasmCloud, cargo-component and
wkg implement it): an OCI image manifest (schemaVersion 2) whose config has the media type
``application/vnd.wasm.config.v0+json`` and which has **exactly one** layer of media type
``application/wasm``: the signed module itself, byte for byte. The wasmsign2 signature
travels inside the module, so no referrers API is needed. forgeoned allows one more layer,
and only this one: the plugin's staging attestation (``NAME.wasm.intoto.json``, media type
``application/vnd.in-toto+json``), so that a production daemon with ``require_staging``
gets the evidence with the module; any other layer, or a second of either, is refused.
forgeoned adds annotations naming the plugin, its version and the key ids that signed it,
so that a registry UI (or ``forgeonectl sources``) shows what a tag holds without
downloading it; the daemon never trusts them: it verifies the module it downloaded.

References are ``oci://HOST[:PORT]/REPO[:TAG]`` or ``oci://HOST[:PORT]/REPO@sha256:HEX``. A
digest reference is a pin: it never moves, and the manifest's own bytes must hash to it.
Pure: no I/O (the registry client is :mod:`forgeoned.adapters.oci`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from forgeoned.errors import ConfigError, SourceError, SyncReason

MANIFEST_MEDIA_TYPE: Final = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE: Final = "application/vnd.wasm.config.v0+json"
LAYER_MEDIA_TYPE: Final = "application/wasm"
ATTESTATION_MEDIA_TYPE: Final = "application/vnd.in-toto+json"  # the staging attestation
ANNOTATION_NAME: Final = "io.forgeone.plugin.name"
ANNOTATION_VERSION: Final = "io.forgeone.plugin.version"
ANNOTATION_SIGNERS: Final = "io.forgeone.plugin.signer-key-ids"  # comma-separated hex key ids
ANNOTATION_TITLE: Final = "org.opencontainers.image.title"
MAX_MANIFEST_BYTES: Final = 256 * 1024  # a manifest larger than this is not one of ours

_REPO: Final = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST: Final = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](?::[0-9]{1,5})?$")


@dataclass(frozen=True, slots=True)
class Reference:
    """``oci://HOST/REPO:TAG`` or ``oci://HOST/REPO@sha256:…`` (a pin)."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    @property
    def selector(self) -> str:
        """What goes after ``/manifests/``: the digest of a pin, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        at = f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"
        return f"oci://{self.host}/{self.repository}{at}"


def parse_reference(text: str) -> Reference:
    """Parse ``oci://HOST/REPO[:TAG|@sha256:HEX]``; :class:`ConfigError` naming what is wrong."""
    if not text.startswith("oci://"):
        raise ConfigError(f"{text!r}: an OCI reference starts with oci://")
    rest = text[len("oci://") :]
    host, slash, path = rest.partition("/")
    if not slash or not _HOST.match(host):
        raise ConfigError(f"{text!r}: expected oci://HOST[:PORT]/REPOSITORY[:TAG]")
    digest = tag = None
    if "@" in path:
        path, _, digest = path.partition("@")
        if not _DIGEST.match(digest):
            raise ConfigError(f"{text!r}: a digest is sha256: and 64 lowercase hex digits")
    else:
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path, _, tag = path.rpartition(":")
            if not _TAG.match(tag):
                raise ConfigError(f"{text!r}: bad tag {tag!r}")
    if not _REPO.match(path):
        raise ConfigError(f"{text!r}: bad repository name {path!r}")
    return Reference(host, path, tag if digest is None else None, digest)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class PushPlan:
    """What ``push`` uploads: the config blob, the module blob, and the manifest over both."""

    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def plan_push(
    module: bytes, name: str, version: str, key_ids: list[str], created: str,
    attestation: bytes | None = None,
) -> PushPlan:  # fmt: skip
    """The config and manifest for ``module`` (the layer is the module's own bytes), and
    ``attestation`` as a second layer when given."""
    layer = Descriptor(LAYER_MEDIA_TYPE, sha256_digest(module), len(module))
    layers = [{**layer.to_json(), "annotations": {ANNOTATION_TITLE: f"{name}-{version}.wasm"}}]
    if attestation is not None:
        att = Descriptor(ATTESTATION_MEDIA_TYPE, sha256_digest(attestation), len(attestation))
        title = f"{name}-{version}.wasm.intoto.json"
        layers.append({**att.to_json(), "annotations": {ANNOTATION_TITLE: title}})
    config_obj = {
        "created": created,
        "architecture": "wasm",
        # forgeoned plugins are core modules for the forgeone ABI, not WASI: no "os" claim.
        "layerDigests": [str(d["digest"]) for d in layers],
    }
    config = json.dumps(config_obj, sort_keys=True, separators=(",", ":")).encode()
    manifest_obj = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": CONFIG_MEDIA_TYPE,
        "config": Descriptor(CONFIG_MEDIA_TYPE, sha256_digest(config), len(config)).to_json(),
        "layers": layers,
        "annotations": {
            ANNOTATION_NAME: name,
            ANNOTATION_VERSION: version,
            ANNOTATION_SIGNERS: ",".join(sorted(key_ids)),
            "org.opencontainers.image.created": created,
        },
    }
    manifest = json.dumps(manifest_obj, sort_keys=True, separators=(",", ":")).encode()
    return PushPlan(config, manifest)


@dataclass(frozen=True, slots=True)
class Artifact:
    """What a checked manifest points at: the one module layer, its staging attestation if
    it has one, and what it claims to be."""

    manifest_digest: str
    layer: Descriptor
    annotations: dict[str, str]
    attestation: Descriptor | None = None


def check_manifest(raw: bytes, expected_digest: str | None) -> Artifact:
    """The module layer of a Wasm OCI manifest, or a :class:`SourceError` saying why not."""
    digest = sha256_digest(raw)
    if expected_digest is not None and digest != expected_digest:
        raise SourceError(
            f"manifest hashes to {digest}, not the pinned {expected_digest}",
            SyncReason.DIGEST_MISMATCH,
        )
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"manifest is not JSON: {exc}", SyncReason.BAD_MANIFEST) from None
    if not isinstance(obj, dict) or obj.get("schemaVersion") != 2:
        raise SourceError("not an OCI image manifest (schemaVersion 2)", SyncReason.BAD_MANIFEST)
    media = obj.get("mediaType", MANIFEST_MEDIA_TYPE)
    if media != MANIFEST_MEDIA_TYPE:
        raise SourceError(f"manifest media type {media!r} is not {MANIFEST_MEDIA_TYPE}",
                          SyncReason.MEDIA_TYPE)  # fmt: skip
    config = _descriptor(obj.get("config"), "config")
    if config.media_type != CONFIG_MEDIA_TYPE:
        raise SourceError(
            f"config media type {config.media_type!r} is not {CONFIG_MEDIA_TYPE}",
            SyncReason.MEDIA_TYPE,
        )
    layers = obj.get("layers")
    if not isinstance(layers, list) or len(layers) not in (1, 2):
        count = len(layers) if isinstance(layers, list) else 0
        raise SourceError(
            f"a Wasm artifact has one module layer (and at most one attestation layer), "
            f"this manifest has {count} layers",
            SyncReason.LAYER_COUNT,
        )
    found = [_descriptor(raw, "layer") for raw in layers]
    for d in found:
        if d.media_type not in (LAYER_MEDIA_TYPE, ATTESTATION_MEDIA_TYPE):
            raise SourceError(
                f"layer media type {d.media_type!r} is neither {LAYER_MEDIA_TYPE} nor "
                f"{ATTESTATION_MEDIA_TYPE}",
                SyncReason.MEDIA_TYPE,
            )
    modules = [d for d in found if d.media_type == LAYER_MEDIA_TYPE]
    attestations = [d for d in found if d.media_type == ATTESTATION_MEDIA_TYPE]
    if len(modules) != 1:
        raise SourceError(
            f"a Wasm artifact has exactly one {LAYER_MEDIA_TYPE} layer, this manifest has "
            f"{len(modules)} (and {len(attestations)} attestation layers)",
            SyncReason.LAYER_COUNT,
        )
    notes = obj.get("annotations") or {}
    clean = {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) else {}
    return Artifact(digest, modules[0], clean, attestations[0] if attestations else None)


def _descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise SourceError(f"manifest has no {what} descriptor", SyncReason.BAD_MANIFEST)
    media, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media, str) or not isinstance(digest, str) or not _DIGEST.match(digest):
        raise SourceError(f"{what} descriptor lacks a media type or a sha256 digest",
                          SyncReason.BAD_MANIFEST)  # fmt: skip
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise SourceError(f"{what} descriptor has no valid size", SyncReason.BAD_MANIFEST)
    return Descriptor(media, digest, size)
