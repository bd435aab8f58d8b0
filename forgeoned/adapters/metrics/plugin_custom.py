"""Plugins' own metrics on ``/metrics``: ``forgeone_plugin_<name>`` with the ``plugin`` label.

Built at scrape time from each plugin's :class:`~forgeoned.core.plugin_metrics.PluginMetricSet`
(only declared metrics, only declared label values: see docs/plugin-hooks.md). Two plugins
may declare the same metric name: they share one family when they agree on its type and label
names; a plugin whose declaration disagrees with the family already built (plugins are taken
in name order) is left out of it, so the exposition always stays valid.
"""

from __future__ import annotations

from collections.abc import Iterable

from forgeoned.adapters.metrics.family import Family
from forgeoned.core.hooks_manifest import MetricDecl
from forgeoned.core.stats import PluginView

PREFIX = "forgeone_plugin_"


def _shape(decl: MetricDecl) -> tuple[str, tuple[str, ...]]:
    return decl.kind.value, tuple(label for label, _ in decl.labels)


def custom_families(views: Iterable[PluginView]) -> list[Family]:
    families: dict[str, tuple[tuple[str, tuple[str, ...]], Family]] = {}
    for view in sorted(views, key=lambda v: v.name):
        custom = view.stats.custom
        if custom is None:
            continue
        for snap in custom.snapshot():
            decl = snap.decl
            shape = _shape(decl)
            known = families.get(decl.name)
            if known is None:
                family = Family(PREFIX + decl.name, decl.kind.value, decl.help or decl.name,
                                ("plugin", *shape[1]))  # fmt: skip
                known = families[decl.name] = (shape, family)
            if known[0] != shape:
                continue  # disagrees with the family's first declaration: left out
            family = known[1]
            for labels, value in snap.values:
                family.add((view.name, *labels), value)
            for labels, hist in snap.histograms:
                family.add_histogram((view.name, *labels), hist)
    return [family for _, family in families.values()]


def config_refused_family(views: Iterable[PluginView]) -> Family:
    family = Family(
        "forgeone_plugin_config_refused",
        "counter",
        "Plugin configuration files refused (the config in force kept)",
        ("plugin",),
    )
    for view in views:
        family.add((view.name,), view.stats.config_refused)
    return family
