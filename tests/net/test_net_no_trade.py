"""A device its owner enrolled with ``--no-trade``, across real processes on loopback: its node
skips its own checks (``InjectedFaults(unchecked_pay=True)``) and tries to pay its owner; the
owner's node refuses to co-sign, the owner's node will not pay it either, and nothing is
committed on either chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from nodes import ZONE, NodeProcess, enroll, init, members, wait_for

from ioe.node.client import ApiError
from ioe.testing.faults import InjectedFaults

pytestmark = pytest.mark.process

NO_TRADE = (
    "may not trade: its enrollment does not allow trading (its owner enrolled it with --no-trade)"
)


def test_a_no_trade_device_s_unchecked_payment_is_refused_and_nothing_is_committed(
    tmp_path: Path,
) -> None:
    owner_dir, device_dir = tmp_path / "owner", tmp_path / "device"
    owner = NodeProcess(owner_dir, init(owner_dir))
    device: NodeProcess | None = None
    try:
        owner.start("--no-mdns")
        agent = enroll(
            owner_dir, owner.addr, device_dir, "consumption", "Quiet plug", ZONE, "--no-trade"
        )
        device = NodeProcess(device_dir, agent, faults=InjectedFaults(unchecked_pay=True))
        key_file = str(device_dir / "device.key")
        device.start("--no-mdns", "--bootstrap", owner.addr, "--key-file", key_file)
        both = {owner.owner, agent}
        for node in (owner, device):
            wait_for(lambda n=node: both <= members(n), timeout=30)

        # The device's node skips its own checks and starts a session: the owner's node refuses.
        with pytest.raises(ApiError) as refused:
            device.api("POST", "/v1/wallet/pay", {"to": owner.owner, "amount_mc": 1_000})
        assert "the payment was refused" in str(refused.value)
        assert f"the payer {NO_TRADE}" in str(refused.value)
        # The owner's node will not pay the device either (before any session).
        with pytest.raises(ApiError) as not_paid:
            owner.api("POST", "/v1/wallet/pay", {"to": agent, "amount_mc": 1_000})
        assert f"the receiver {NO_TRADE}" in str(not_paid.value)

        wait_for(
            lambda: all(not n.api("GET", "/v1/countersign")["locks"] for n in (owner, device)),
            timeout=15,
        )
        for node in (owner, device):
            assert node.api("GET", "/v1/wallet/history")["items"] == []
            assert node.api("GET", "/v1/countersign")["committed"] == []
            assert node.api("GET", "/v1/wallet")["balance_mc"] == 0
    finally:
        if device is not None:
            device.stop()
        owner.stop()
