"""One metric family as the model builds it, before it becomes exposition text."""

from __future__ import annotations

from dataclasses import dataclass, field

from forgeoned.core.stats import Histogram

Sample = tuple[str, tuple[str, ...], float]  # suffix, label values, value
# label values, bucket bounds as text ("le"), cumulative counts, sum, count
HistogramSample = tuple[tuple[str, ...], tuple[str, ...], list[int], float, int]


@dataclass(slots=True)
class Family:
    """One metric: ``kind`` is counter, gauge or histogram; counters get ``_total`` samples."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[Sample] = field(default_factory=list)
    histograms: list[HistogramSample] = field(default_factory=list)
    free_text: bool = False  # label values not from a bounded, validated set: escape them

    def add(self, values: tuple[str, ...], value: float) -> None:
        self.samples.append(("_total" if self.kind == "counter" else "", values, value))

    def add_histogram(self, values: tuple[str, ...], hist: Histogram) -> None:
        counts = [count for _, count in hist.cumulative()]
        self.histograms.append((values, _les(hist.bounds), counts, hist.total, counts[-1]))


_LES: dict[tuple[float, ...], tuple[str, ...]] = {}


def _les(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` label values of a bucket layout (the last one ``+Inf``), computed once."""
    text = _LES.get(bounds)
    if text is None:
        text = _LES[bounds] = (*(repr(float(b)) for b in bounds), "+Inf")
    return text
