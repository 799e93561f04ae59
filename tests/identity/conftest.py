"""Shared by the identity tests: deterministic owners, keysets and certificates (``idkit``)."""

from dataclasses import dataclass

import pytest

from ioe.crypto.derivation import OwnerAccount, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.identity.authority import AuthoritySpec, Keyset, single_owner
from ioe.identity.certificate import EnrollmentCertificate, issue
from ioe.vocabulary import DeviceType

T0 = 1_800_000_000_000_000
NETWORK = "ioe-core"


@dataclass(frozen=True)
class Owner:
    """An owner account with a single-owner keyset (authorization key, revocation key)."""

    account: OwnerAccount

    @property
    def authz(self) -> KeyPair:
        return self.account.authorization_key()

    @property
    def revoker(self) -> KeyPair:
        return self.account.revocation_key()

    @property
    def agent(self) -> KeyPair:
        return self.account.agent_key()

    @property
    def keyset(self) -> Keyset:
        return Keyset(single_owner(self.authz.agent, self.revoker.agent))

    def device(self, index: int = 1, agent: int = 0) -> KeyPair:
        return device_agent_key(self.account.device_seed(index), agent)


def owner(n: int) -> Owner:
    return Owner(OwnerAccount.from_root_seed(bytes([n]) * 32))


def signer(n: int) -> KeyPair:
    return KeyPair(bytes([0x80 + n]) * 32)


def certificate(
    keyset: Keyset,
    owner_agent: KeyPair,
    device: KeyPair,
    *signers: KeyPair,
    networks: tuple[str, ...] = (NETWORK,),
    issued_us: int = T0,
    device_type: DeviceType = DeviceType.STORAGE,
) -> EnrollmentCertificate:
    cert = issue(
        keyset=keyset,
        owner_agent=owner_agent,
        device=device.agent,
        device_type=device_type,
        name="Garage battery",
        zone="au/nsw/newtown",
        networks=networks,
        neighbourhoods=("au/nsw/newtown",),
        issued_us=issued_us,
        serial=1,
    )
    return cert.signed_by(*signers)


def enrolled(o: Owner, device: int = 1) -> EnrollmentCertificate:
    """``o``'s device ``device`` enrolled by ``o``'s single-owner keyset."""
    return certificate(o.keyset, o.agent, o.device(device), o.authz)


def multi_keyset(m: int, n: int) -> tuple[Keyset, list[KeyPair]]:
    keys = [signer(i) for i in range(n)]
    return Keyset(AuthoritySpec.of(m, [k.agent for k in keys])), keys


class IdKit:
    T0 = T0
    NETWORK = NETWORK
    Owner = Owner
    owner = staticmethod(owner)
    signer = staticmethod(signer)
    certificate = staticmethod(certificate)
    enrolled = staticmethod(enrolled)
    multi_keyset = staticmethod(multi_keyset)


@pytest.fixture(scope="session")
def idkit() -> type[IdKit]:
    return IdKit
