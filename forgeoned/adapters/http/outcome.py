"""How one outbound request of a plugin ended (:class:`Outcome`): what the plugin is told
and, for a refusal, the rule the audit log names. Kept apart from the exchange itself so that
whatever only reads or builds outcomes (the hook, the sandbox's tape) does not load httpcore.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forgeoned.core.abi import HostOutcome as O
from forgeoned.errors import OutboundRule as R

__all__ = ["Outcome", "refused"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended: ``code`` for the plugin (>= 0 only with a response)."""

    code: int
    outcome: O
    rule: R | None = None  # set: the refusal is audited
    destination: str = ""
    detail: str = ""
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def refused(code: int, outcome: O, rule: R | None, destination: str, detail: str) -> Outcome:
    return Outcome(code, outcome, rule, destination, detail)
