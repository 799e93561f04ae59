"""Membrane proofs for tests, benchmarks and simulations of the core DNA.

The core DNA admits no agent without a proof (docs/identity.md, "The membrane"). A test that
runs core-DNA cells of bare key pairs gives each agent an owner membership of its own:
:func:`membrane_proof_for` derives a one-key keyset (an authorization key made from the agent's
seed, so the same agent always gets the same keyset) and has the agent bind itself to it.
"""

from __future__ import annotations

import hashlib

from ioe.conductor import owner_keyset, owner_membership_for
from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dnas import CORE_DNA_NAME
from ioe.identity.authority import Keyset, single_owner
from ioe.identity.certificate import EnrollmentCertificate, issue
from ioe.identity.membership import owner_membership
from ioe.vocabulary import DeviceType


def authorization_key_for(keys: KeyPair) -> KeyPair:
    """The authorization key of the test keyset :func:`membrane_proof_for` gives ``keys``."""
    return KeyPair(hashlib.blake2b(keys.seed(), digest_size=32, person=b"ioe-test-authz").digest())


def membrane_proof_for(keys: KeyPair, *, issued_us: int = 0) -> bytes:
    """A valid core-DNA membrane proof for the agent of ``keys``: an owner membership."""
    authz = authorization_key_for(keys)
    doc = owner_membership(Keyset(single_owner(authz.agent)), keys, issued_us)
    return doc.signed_by(authz).to_bytes()


def owner_membership_proof(account: OwnerAccount, *, now_us: int = 0) -> bytes:
    """The owner agent's membrane proof, as :class:`~ioe.conductor.Conductor` makes it."""
    return owner_membership_for(account, now_us).to_bytes()


def device_certificate(
    account: OwnerAccount,
    device: int,
    agent: int = 0,
    *,
    now_us: int = 0,
    device_type: DeviceType = DeviceType.CONSUMPTION,
    networks: tuple[str, ...] = (CORE_DNA_NAME,),
) -> EnrollmentCertificate:
    """A certificate by ``account`` (single owner) for agent ``agent`` of its device ``device``."""
    return issue(
        keyset=owner_keyset(account),
        owner_agent=account.agent_key(),
        device=device_agent_key(account.device_seed(device), agent).agent,
        device_type=device_type,
        name=f"device {device}",
        zone="unassigned",
        networks=networks,
        issued_us=now_us,
        serial=device,
    ).signed_by(account.authorization_key())
