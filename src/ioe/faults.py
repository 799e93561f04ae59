"""The named points where a test may break a node on purpose; in production, nowhere.

A node hands its :class:`Faults` to the parts that reach those points (the countersigners, the
wallet: a port they are given, so they never reach for the node), and they ask it at each one.
The default, :data:`NO_FAULTS`, does nothing. Tests pass their own (:mod:`ioe.testing.faults`):
to kill a process at an exact step of a countersigning session, or to make a payer skip its own
checks so that the receiver's refusal can be seen. Nothing here reads the environment: a fault
is switched on only by whoever builds the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, get_args

if TYPE_CHECKING:
    from ioe.engine.cell import Cell
    from ioe.hashing import AgentPubKey
    from ioe.zomes.currency.entries import Transfer

SessionPoint = Literal[
    "responder-before-response",
    "responder-before-set",
    "initiator-before-commit",
    "initiator-after-commit",
]
SESSION_POINTS: Final[tuple[SessionPoint, ...]] = get_args(SessionPoint)
"""The steps of a countersigning session where :meth:`Faults.reached` is asked."""


class Faults(Protocol):
    def reached(self, point: SessionPoint) -> None:
        """A countersigning session reached ``point`` on this node."""

    def prepare_transfer(
        self, cell: Cell, to: AgentPubKey, payload: Mapping[str, Any], now_us: int
    ) -> Transfer | None:
        """The transfer to send in place of the one the payer's own rules build and check
        (``currency.prepare_payment`` with ``payload``), or None to let them."""


class NoFaults:
    """What production runs with: every point passes, every payment is checked."""

    def reached(self, point: SessionPoint) -> None:
        return None

    def prepare_transfer(
        self, cell: Cell, to: AgentPubKey, payload: Mapping[str, Any], now_us: int
    ) -> Transfer | None:
        return None


NO_FAULTS: Final[Faults] = NoFaults()
