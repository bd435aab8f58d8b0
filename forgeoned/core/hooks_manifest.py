"""The provider-hook keys of the manifest: named functions, labels, config keys and metrics.

Pure parsing and validation (docs/plugin-hooks.md): every limit here is what keeps a plugin's
declarations, and so its metric series and its config, bounded before it ever runs.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from forgeoned.errors import ManifestError

IDENT_RE: Final = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
CONFIG_KEY_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
LABEL_VALUE_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_FUNCTIONS: Final = 32
MAX_LABELS: Final = 16
MAX_LABEL_TEXT: Final = 64
MAX_CONFIG_KEYS: Final = 64
MAX_HELP: Final = 256
MAX_METRICS: Final = 16
MAX_METRIC_LABELS: Final = 4
MAX_LABEL_VALUES: Final = 16
MAX_SERIES_PER_METRIC: Final = 64
MAX_SERIES_PER_PLUGIN: Final = 256
MAX_BUCKETS: Final = 16
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RESERVED_FUNCTIONS: Final = frozenset(
    {"init", "start", "stop", "pause", "resume", "unload", "handle", "alloc", "tick", "memory"}
)
# forgeone_plugin_<name> must not collide with a host metric family
RESERVED_METRICS: Final = frozenset(
    {"info", "up", "state", "calls", "call_duration_seconds", "restarts", "memory_bytes",
     "fuel_consumed", "log_dropped", "instances", "config_refused"}
)  # fmt: skip
_RESERVED_SUFFIXES: Final = ("_total", "_bucket", "_sum", "_count", "_created")
_RESERVED_LABELS: Final = frozenset({"plugin", "le", "quantile"})


class ConfigType(enum.Enum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"


class MetricKind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


ConfigValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class ConfigKey:
    name: str
    type: ConfigType
    default: ConfigValue | None = None
    required: bool = False
    secret: bool = False
    help: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type.value}
        if self.default is not None:
            out["default"] = self.default
        if self.required:
            out["required"] = True
        if self.secret:
            out["secret"] = True
        if self.help:
            out["help"] = self.help
        return out


@dataclass(frozen=True, slots=True)
class MetricDecl:
    name: str
    kind: MetricKind
    help: str = ""
    labels: tuple[tuple[str, frozenset[str]], ...] = ()  # (label, allowed values), declared order
    buckets: tuple[float, ...] = ()

    @property
    def series(self) -> int:
        return math.prod(len(values) for _, values in self.labels)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind.value}
        if self.help:
            out["help"] = self.help
        if self.labels:
            out["labels"] = {name: sorted(values) for name, values in self.labels}
        if self.kind is MetricKind.HISTOGRAM:
            out["buckets"] = list(self.buckets)
        return out


def _fail(field_name: str, problem: str) -> ManifestError:
    return ManifestError(f"manifest field {field_name!r}: {problem}")


def _text(raw: Any, where: str, limit: int) -> str:
    if not isinstance(raw, str) or len(raw) > limit:
        raise _fail(where, f"must be a string of at most {limit} characters")
    return raw


def _table(raw: Any, where: str, cap: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(where, "must be an object")
    if len(raw) > cap:
        raise _fail(where, f"{len(raw)} entries, over the cap of {cap}")
    return raw


def parse_functions(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_FUNCTIONS:
        raise _fail("functions", f"must be a list of at most {MAX_FUNCTIONS} names")
    for name in raw:
        if not isinstance(name, str) or not IDENT_RE.match(name):
            raise _fail("functions", f"invalid name {name!r} (expected {IDENT_RE.pattern})")
        if name in RESERVED_FUNCTIONS:
            raise _fail("functions", f"{name!r} is an ABI export, not a named function")
    if len(set(raw)) != len(raw):
        raise _fail("functions", "lists a name twice")
    return tuple(raw)


def parse_labels(raw: Any) -> tuple[tuple[str, str], ...]:
    table = _table(raw, "labels", MAX_LABELS)
    for name, value in table.items():
        if not IDENT_RE.match(name):
            raise _fail(f"labels.{name}", f"invalid label name (expected {IDENT_RE.pattern})")
        _text(value, f"labels.{name}", MAX_LABEL_TEXT)
    return tuple(sorted(table.items()))


def _typed(kind: ConfigType, value: Any) -> bool:
    if kind is ConfigType.STRING:
        return isinstance(value, str)
    if kind is ConfigType.BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is ConfigType.INT:
        return isinstance(value, int)
    return isinstance(value, int | float) and math.isfinite(value)


def check_value(kind: ConfigType, value: Any) -> ConfigValue | None:
    """``value`` if it has type ``kind`` (an int is a fine float: made one), else None."""
    if not _typed(kind, value):
        return None
    if kind is ConfigType.FLOAT:
        return float(value)
    assert isinstance(value, str | int | float | bool)
    return value


def parse_config_keys(raw: Any) -> tuple[ConfigKey, ...]:
    out = []
    for name, body in _table(raw, "config", MAX_CONFIG_KEYS).items():
        where = f"config.{name}"
        if not CONFIG_KEY_RE.match(name):
            raise _fail(where, f"invalid key (expected {CONFIG_KEY_RE.pattern})")
        spec = _table(body, where, 8)
        unknown = sorted(set(spec) - {"type", "default", "required", "secret", "help"})
        if unknown:
            raise _fail(f"{where}.{unknown[0]}", "unknown field")
        try:
            kind = ConfigType(spec.get("type"))
        except ValueError:
            raise _fail(f"{where}.type", "must be string, int, float or bool") from None
        flags = {}
        for flag in ("required", "secret"):
            flags[flag] = spec.get(flag, False)
            if not isinstance(flags[flag], bool):
                raise _fail(f"{where}.{flag}", "must be true or false")
        default = spec.get("default")
        if default is not None:
            if flags["secret"]:
                raise _fail(f"{where}.default", "a secret key has no default")
            default = check_value(kind, default)
            if default is None:
                raise _fail(f"{where}.default", f"must be a {kind.value}")
            if isinstance(default, str) and len(default) > 4096:
                raise _fail(f"{where}.default", "longer than 4096 characters")
        help_text = _text(spec.get("help", ""), f"{where}.help", MAX_HELP)
        out.append(ConfigKey(name, kind, default, flags["required"], flags["secret"], help_text))
    return tuple(out)


def _metric_labels(raw: Any, where: str) -> tuple[tuple[str, frozenset[str]], ...]:
    out = []
    for label, values in _table(raw, where, MAX_METRIC_LABELS).items():
        at = f"{where}.{label}"
        if not IDENT_RE.match(label) or label in _RESERVED_LABELS or label.startswith("__"):
            raise _fail(at, "invalid or reserved label name")
        if not isinstance(values, list) or not 1 <= len(values) <= MAX_LABEL_VALUES:
            raise _fail(at, f"must list 1..{MAX_LABEL_VALUES} values")
        for value in values:
            if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
                raise _fail(at, f"invalid value {value!r} (expected {LABEL_VALUE_RE.pattern})")
        if len(set(values)) != len(values):
            raise _fail(at, "lists a value twice")
        out.append((label, frozenset(values)))
    return tuple(out)


def _buckets(raw: Any, where: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BUCKETS:
        raise _fail(where, f"must list 1..{MAX_BUCKETS} bucket bounds")
    if not all(_typed(ConfigType.FLOAT, b) for b in raw):
        raise _fail(where, "bucket bounds must be finite numbers")
    bounds = tuple(float(b) for b in raw)
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise _fail(where, "bucket bounds must increase")
    return bounds


def parse_metrics(raw: Any) -> tuple[MetricDecl, ...]:
    out = []
    for name, body in _table(raw, "metrics", MAX_METRICS).items():
        where = f"metrics.{name}"
        if not IDENT_RE.match(name) or name in RESERVED_METRICS:
            raise _fail(where, "invalid or reserved metric name")
        if name.endswith(_RESERVED_SUFFIXES):
            raise _fail(where, f"must not end in {', '.join(_RESERVED_SUFFIXES)}")
        spec = _table(body, where, 4)
        unknown = sorted(set(spec) - {"type", "help", "labels", "buckets"})
        if unknown:
            raise _fail(f"{where}.{unknown[0]}", "unknown field")
        try:
            kind = MetricKind(spec.get("type"))
        except ValueError:
            raise _fail(f"{where}.type", "must be counter, gauge or histogram") from None
        if "buckets" in spec and kind is not MetricKind.HISTOGRAM:
            raise _fail(f"{where}.buckets", "only a histogram has buckets")
        buckets: tuple[float, ...] = DEFAULT_BUCKETS
        if kind is MetricKind.HISTOGRAM and "buckets" in spec:
            buckets = _buckets(spec["buckets"], f"{where}.buckets")
        decl = MetricDecl(
            name,
            kind,
            _text(spec.get("help", ""), f"{where}.help", MAX_HELP),
            _metric_labels(spec.get("labels", {}), f"{where}.labels"),
            buckets if kind is MetricKind.HISTOGRAM else (),
        )
        if decl.series > MAX_SERIES_PER_METRIC:
            raise _fail(where, f"{decl.series} label combinations, over {MAX_SERIES_PER_METRIC}")
        out.append(decl)
    total = sum(d.series for d in out)
    if total > MAX_SERIES_PER_PLUGIN:
        raise _fail("metrics", f"{total} series in all, over the cap of {MAX_SERIES_PER_PLUGIN}")
    return tuple(out)
