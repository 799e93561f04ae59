"""The keyset an owner's node signs under: its own, or an enterprise's M-of-N keyset.

A single owner's node signs certificates, revocations and transfers with its authorization key
alone (:func:`ioe.conductor.owner_keyset`). An enterprise portfolio is run by one owner node (the
*portfolio node*, whose owner agent becomes the portfolio's owner agent) but governed by several
officers, each an owner account with its own authorization key: ``ioe owner keyset create``
stores a genesis :class:`~ioe.identity.authority.AuthoritySpec` of the officers' keys, M of
which must sign. From then on every document this node issues carries that keyset
(:mod:`ioe.identity.service.keyset_signing` collects the signatures).

**Decision: no revoker by default.** A revoker may alone revoke keys and change the spec; giving
it to the portfolio node's own revocation key would let one person undo the M-of-N rule. An
enterprise recovers a lost officer key with M of the others instead. ``--revoker KEY`` names one
explicitly when the enterprise wants an offline emergency key (e.g. one kept in a safe).

**Decision: the owner agent does not re-join.** Its core-DNA genesis keeps its single-owner
owner membership; certificates carry the enterprise keyset chain and the owner binding (the owner
agent's signature of the enterprise keyset id), so validators need nothing else. A network that
lists ``trusted_keysets`` must list the enterprise keyset for the devices and the owner's own
keyset for the owner agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ioe.conductor import Conductor, owner_keyset
from ioe.crypto.derivation import OwnerAccount
from ioe.encoding import encode
from ioe.engine.schema import decode_as, to_value
from ioe.errors import EncodingError, IoEError
from ioe.hashing import AgentPubKey
from ioe.identity.authority import AuthoritySpec, Keyset, keyset_problem, spec_problem

KEYSET_SETTING = "owner_keyset"
"""The stored genesis spec (canonical CBOR of the keyset) of an enterprise portfolio."""


class KeysetError(IoEError):
    """A keyset cannot be made or used as asked (the message says why)."""


def _account(conductor: Conductor) -> OwnerAccount:
    account = conductor.account
    if not isinstance(account, OwnerAccount):
        raise KeysetError("only an owner's node has a keyset")
    return account


def stored_keyset(conductor: Conductor) -> Keyset | None:
    """The enterprise keyset this node was given, or None (a single owner)."""
    raw = conductor.db.get_setting(KEYSET_SETTING)
    if type(raw) is not bytes:
        return None
    try:
        return decode_as(Keyset, raw)
    except (EncodingError, TypeError, ValueError) as exc:
        raise KeysetError(f"the stored keyset is unreadable: {exc}") from None


def node_keyset(conductor: Conductor) -> Keyset:
    """The keyset this owner's node issues documents under: the enterprise keyset if one was
    created, else the owner's own (authorization key, revocation key as revoker)."""
    return stored_keyset(conductor) or owner_keyset(_account(conductor))


def parse_keys(texts: Sequence[str], what: str = "signer") -> list[AgentPubKey]:
    keys = []
    for text in texts:
        try:
            keys.append(AgentPubKey.from_text(text))
        except (EncodingError, ValueError) as exc:
            raise KeysetError(f"not a {what} key: {text[:60]!r} ({exc})") from None
    return keys


def enterprise_spec(
    signers: Sequence[AgentPubKey], required: int, revoker: AgentPubKey | None = None
) -> AuthoritySpec:
    """The genesis spec of an enterprise: ``required`` of ``signers`` (given in any order)."""
    if len(set(signers)) != len(signers):
        raise KeysetError("a signer is listed twice")
    spec = AuthoritySpec.of(required, signers, revoker)
    problem = spec_problem(spec)
    if problem:
        raise KeysetError(problem)
    return spec


def create_keyset(
    conductor: Conductor,
    signers: Sequence[AgentPubKey],
    required: int,
    revoker: AgentPubKey | None = None,
) -> Keyset:
    """Make this owner node the portfolio node of a new enterprise keyset and store it.

    Refused when one exists (changing it is a keyset change signed by M, not a new genesis), and
    when the owner agent itself is named (an owner agent is never its own keyset's key)."""
    account = _account(conductor)
    if stored_keyset(conductor) is not None:
        raise KeysetError(
            "this node already has an enterprise keyset (see `ioe owner keyset show`)"
        )
    spec = enterprise_spec(signers, required, revoker)
    if account.agent_key().agent in (*spec.signers, spec.revoker):
        raise KeysetError(
            "the owner agent cannot be a keyset key: name officers' authorization keys "
            "(`ioe owner keyset key`)"
        )
    keyset = Keyset(spec)
    problem = keyset_problem(keyset)
    if problem:
        raise KeysetError(problem)
    conductor.db.put_setting(KEYSET_SETTING, encode(to_value(keyset)))
    return keyset


def keyset_json(keyset: Keyset, conductor: Conductor) -> dict[str, Any]:
    """What ``ioe owner keyset show --json`` prints."""
    account = _account(conductor)
    spec = keyset.current
    return {
        "id": keyset.id.to_text(),
        "enterprise": stored_keyset(conductor) is not None,
        "required": spec.sigs_required,
        "signers": [s.to_text() for s in spec.signers],
        "revoker": spec.revoker.to_text() if spec.revoker is not None else None,
        "changes": len(keyset.changes),
        "owner": account.agent_key().agent.to_text(),
        "key": account.authorization_key().agent.to_text(),
    }
