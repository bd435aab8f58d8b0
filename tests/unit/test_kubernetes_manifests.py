"""packaging/kubernetes validated offline against the Kubernetes API: every field of every
object is checked, strictly, against the official Python client's models (``kubernetes``,
generated from the API's OpenAPI schema): unknown fields, wrong types and missing required
fields fail. Then the fleet rules of issue 16: no hostPath, no subPath, the trust store a
ConfigMap mounted as a directory, plugins.d an emptyDir filled by an init container, the
control socket on a shared volume, probes, resources sized from the operator ceilings,
metrics annotations, and an embedded config the daemon accepts. Nothing here talks to a
cluster."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
import yaml

from forgeoned.daemon.config_file import parse_config

DIR = Path(__file__).resolve().parents[2] / "packaging" / "kubernetes"
KINDS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
}
_SCALARS: dict[str, type | tuple[type, ...]] = {
    "str": str, "bool": bool, "int": int, "float": (int, float), "object": object,
    "datetime": str, "date": str, "bytearray": str,
}  # fmt: skip


def _documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DIR.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _check(value: Any, type_name: str, where: str) -> list[str]:
    """Problems of ``value`` against the client's type string (``V1Container``,
    ``List[V1Volume]``, ``Dict[str, str]``, ``str``…)."""
    if m := re.fullmatch(r"(?:List|list)\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [p for i, v in enumerate(value) for p in _check(v, m.group(1), f"{where}[{i}]")]
    if m := re.fullmatch(r"(?:Dict|dict)\[str, (.+)\]|dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping"]
        inner = m.group(1) or m.group(2)
        return [p for key, v in value.items() for p in _check(v, inner, f"{where}.{key}")]
    if type_name in _SCALARS:
        ok = isinstance(value, _SCALARS[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        return [] if ok else [f"{where}: expected {type_name}, got {value!r}"]
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} object"]
    by_json = {json_key: attr for attr, json_key in model.attribute_map.items()}
    problems = []
    for key, v in value.items():
        if key not in by_json:
            problems.append(f"{where}.{key}: unknown field of {type_name}")
            continue
        problems += _check(v, model.openapi_types[by_json[key]], f"{where}.{key}")
    return problems


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_object_matches_the_kubernetes_api_schema(doc: dict[str, Any]) -> None:
    model = KINDS[(doc["apiVersion"], doc["kind"])]
    assert _check(doc, model, doc["kind"]) == []
    # required fields and enum-like checks: the client's own deserialisation (it raises)
    k8s.ApiClient()._ApiClient__deserialize(doc, model)  # type: ignore[attr-defined]


def test_the_check_is_strict_about_unknown_fields_types_and_required_fields() -> None:
    ds = _daemonset()
    pod = ds["spec"]["template"]["spec"]
    bad = {
        **ds,
        "spec": {
            **ds["spec"],
            "template": {
                **ds["spec"]["template"],
                "spec": {
                    **pod,
                    "containers": [{**pod["containers"][0], "volumeMount": [], "stdin": "yes"}],
                },
            },
        },
    }
    problems = _check(bad, "V1DaemonSet", "DaemonSet")
    assert any("volumeMount: unknown field of V1Container" in p for p in problems)
    assert any("stdin: expected bool" in p for p in problems)
    with pytest.raises(ValueError, match="selector"):
        missing = {**ds, "spec": {k: v for k, v in ds["spec"].items() if k != "selector"}}
        k8s.ApiClient()._ApiClient__deserialize(missing, "V1DaemonSet")  # type: ignore[attr-defined]


def _daemonset() -> dict[str, Any]:
    return next(d for d in _documents() if d["kind"] == "DaemonSet")


def _walk(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(k, v) for k, v in value.items()] + [p for v in value.values() for p in _walk(v)]
    if isinstance(value, list):
        return [p for v in value for p in _walk(v)]
    return []


def test_no_hostpath_no_subpath_and_the_restricted_pod_security_standard() -> None:
    keys = {k for k, _ in _walk(_documents())}
    assert "hostPath" not in keys and "subPath" not in keys and "subPathExpr" not in keys
    pod = _daemonset()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for c in pod["initContainers"] + pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    ns = next(d for d in _documents() if d["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_falcoctl_pattern_volumes_probes_and_metrics() -> None:
    tpl = _daemonset()["spec"]["template"]
    pod = tpl["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["trust"]["configMap"]["name"] == "forgeoned-trust"  # a directory mount
    assert "emptyDir" in volumes["state"] and "emptyDir" in volumes["run"]
    (init,) = pod["initContainers"]
    (main,) = pod["containers"]
    assert init["command"][0] == "forgeoned-fetch" and "--once" in init["command"]
    config = _embedded_config()
    for c in (init, main):
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert mounts[str(config.trust_dir)] == "trust"
        assert str(config.plugins_dir).startswith(next(p for p, n in mounts.items()
                                                       if n == "state"))  # fmt: skip
        assert mounts[str(Path(config.control.socket).parent)] == "run"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in main
    assert main["readinessProbe"]["exec"]["command"][:3] == [
        "forgeonectl", "--socket", config.control.socket,
    ]  # fmt: skip
    notes = tpl["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == config.metrics_listen.rpartition(":")[2]


def _embedded_config() -> Any:
    import tomllib

    cm = next(d for d in _documents() if d["metadata"]["name"] == "forgeoned-config")
    raw = tomllib.loads(cm["data"]["forgeoned.toml"])
    return parse_config(raw, Path("/etc/forgeoned/config/forgeoned.toml"))


_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * _UNITS[unit]


def test_the_container_memory_limit_covers_the_operator_ceilings() -> None:
    config = _embedded_config()
    from forgeoned.core.ceilings import Limit

    plugin_memory = config.limits.default.get(Limit.MEMORY_BYTES)
    instances = config.limits.default.get(Limit.INSTANCES)
    assert plugin_memory is not None and instances is not None
    (main,) = _daemonset()["spec"]["template"]["spec"]["containers"]
    limit = _bytes(main["resources"]["limits"]["memory"])
    needed = plugin_memory * instances + config.compile.memory_bytes * config.compile.workers
    assert limit >= needed + (128 << 20)  # and room for the daemon itself
    assert config.sources and config.sources[0].credentials == "registry"
    assert config.trust_watch is True
