"""The app store zome and the app membrane: manifests signed by their developer, installations
signed by the community's manager granting exactly what the manifest asks, subscription
payments that must be real fees to the developer, and an app network that admits members of
the community only. Hostile manifests and memberships get clear errors."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioe.crypto.derivation import OwnerAccount, app_agent_index, device_agent_key
from ioe.crypto.keys import KeyPair
from ioe.dnas import APP_DNAS, app_dna, core_dna
from ioe.encoding import encode
from ioe.engine.cell import Cell
from ioe.engine.dht import publishable_ops, validate_op
from ioe.engine.integrity import Invalid, Valid
from ioe.engine.records import Entry, Record, SignedAction
from ioe.engine.schema import to_value
from ioe.engine.validation import SourceHost
from ioe.errors import EncodingError, ValidationError, ZomeCallError
from ioe.hashing import ActionHash, ExternalHash
from ioe.identity.authority import Keyset, single_owner
from ioe.store.memory import MemoryDatabase
from ioe.testing.membership import authorization_key_for, device_certificate, membrane_proof_for
from ioe.zomes.appnet.membrane import app_membership
from ioe.zomes.appstore.entries import (
    INSTALLATION_CONTEXT,
    AppListing,
    AppManifest,
    Capability,
    Installation,
    ManifestFileError,
    Pricing,
    PricingModel,
    SubscriptionPayment,
    checked_manifest,
    manifest_from_json,
    sign_manifest,
)
from ioe.zomes.appstore.validation import CURRENCY_ZOME_INDEX
from ioe.zomes.community.entries import (
    Access,
    CommunityCharter,
    CommunityMembership,
    MemberKind,
    Role,
    Visibility,
)

NOW = 1_700_000_000_000_000
DEV, MANAGER, STRANGER = (KeyPair(bytes([n]) * 32) for n in (21, 22, 23))
FILE = {
    "app": "board-test",
    "name": "Notice board",
    "version": "1.2.0",
    "description": "Notes between members.",
    "pricing": {"model": "subscription", "fee_mc": 500, "period_s": 600},
    "capabilities": [
        {"point": "switch", "access": "control"},
        {"point": "power_w", "access": "see"},
    ],
    "dna": "board/1",
}


def cells() -> dict[KeyPair, Cell]:
    dna = core_dna()
    db = MemoryDatabase()
    out = {}
    for keys in (DEV, MANAGER, STRANGER):
        cell = Cell(dna, keys, db.chain(dna.hash, keys.agent))
        cell.genesis(membrane_proof_for(keys), now_us=NOW)
        out[keys] = cell
    return out


def manifest(**change: object) -> AppManifest:
    text = json.dumps({**FILE, **change})
    return sign_manifest(manifest_from_json(text, DEV.agent, NOW), DEV)


def charter() -> CommunityCharter:
    authz = authorization_key_for(MANAGER)
    return CommunityCharter(
        version=1,
        name="King St",
        zone="au/nsw/newtown",
        visibility=Visibility.PUBLIC,
        parent=None,
        manager=Keyset(single_owner(authz.agent)),
        created_us=NOW,
    ).signed_by(authz)


def installation_of(m: AppManifest, c: CommunityCharter, **change: object) -> Installation:
    unsigned = Installation(1, c.id, m.app, m.id, m.capabilities, '{"a":1}', NOW)
    unsigned = dataclasses.replace(unsigned, **change)  # type: ignore[arg-type]
    return unsigned.signed_by(authorization_key_for(MANAGER))


def published(all_cells: dict[KeyPair, Cell], m: AppManifest) -> ActionHash:
    action = all_cells[DEV].call("appstore", "publish", {"manifest": m.to_bytes()}, now_us=NOW)
    assert isinstance(action, ActionHash)
    return action


# ------------------------------------------------------------------------------ manifests


def test_a_manifest_file_becomes_a_signed_manifest_with_sorted_capabilities() -> None:
    m = manifest()
    assert (m.app, m.app_version, m.developer, m.dna) == (
        "board-test",
        "1.2.0",
        DEV.agent,
        "board/1",
    )
    assert m.pricing == Pricing(PricingModel.SUBSCRIPTION, 500, 600)
    assert m.capabilities == (
        Capability("power_w", Access.SEE),
        Capability("switch", Access.CONTROL),
    )  # ordered by point, whatever the file's order
    assert checked_manifest(m.to_bytes()) == m


def test_altering_a_signed_manifest_breaks_its_signature() -> None:
    m = manifest()
    for change in ({"name": "Free money"}, {"pricing": Pricing(PricingModel.FREE)}):
        altered = dataclasses.replace(m, **change)  # type: ignore[arg-type]
        assert "altered or forged" in str(checked_manifest(altered.to_bytes()))
    by_stranger = dataclasses.replace(m, signatures=()).signed_by(STRANGER)
    assert "signature, by the developer" in str(checked_manifest(by_stranger.to_bytes()))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"app": "Bad Id"}, "an app id"),
        ({"version": "one"}, "not a version"),
        ({"dna": "../../etc"}, "not an app DNA name"),
        ({"description": "x" * 2001}, "at most 2000"),
        ({"pricing": {"model": "free", "fee_mc": 5}}, "free app has no fee"),
        ({"pricing": {"model": "subscription", "fee_mc": 5, "period_s": 1}}, "a period is"),
        ({"pricing": {"model": "gift"}}, "not one of free"),
        ({"pricing": {"model": "subscription", "fee_mc": 5.5, "period_s": 60}}, "integers"),
        ({"capabilities": [{"point": "switch", "access": "own"}]}, "not see, control or trade"),
        ({"capabilities": [{"point": "Switch!", "access": "see"}]}, "not a point name"),
        ({"capabilities": "all"}, "a list"),
        ({"extra": 1}, "unknown manifest keys"),
        ({"name": 7}, "is text"),
    ],
)
def test_bad_manifest_files_are_refused_by_name(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ManifestFileError, match=reason):
        manifest_from_json(json.dumps({**FILE, **change}), DEV.agent, NOW)


def test_oversized_and_garbled_manifest_files_are_refused() -> None:
    with pytest.raises(ManifestFileError, match="at most"):
        manifest_from_json(" " * 40_000, DEV.agent, NOW)
    with pytest.raises(ManifestFileError, match="not JSON"):
        manifest_from_json('{"app":', DEV.agent, NOW)
    with pytest.raises(ManifestFileError, match="lacks"):
        manifest_from_json("{}", DEV.agent, NOW)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
        max_leaves=20,
    )
)
def test_any_json_is_a_manifest_or_a_manifest_file_error(value: object) -> None:
    try:
        m = manifest_from_json(json.dumps(value), DEV.agent, NOW)
    except ManifestFileError:
        return
    assert m.developer == DEV.agent and m.signatures == ()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_are_a_manifest_or_an_encoding_error(data: bytes) -> None:
    with contextlib.suppress(EncodingError):
        AppManifest.from_bytes(data)
    assert isinstance(checked_manifest(data), AppManifest | str)


def test_only_the_developer_publishes_and_every_op_validates() -> None:
    all_cells = cells()
    m = manifest()
    with pytest.raises(ZomeCallError, match="published by the developer"):
        all_cells[STRANGER].call("appstore", "publish", {"manifest": m.to_bytes()}, now_us=NOW)
    action = published(all_cells, m)
    dev = all_cells[DEV]
    host = SourceHost(dev.dna, dev.store)
    start = dev.get(action)
    assert start is not None
    for record in [r for r in dev.query() if r.action.seq >= start.action.seq]:
        for op in publishable_ops(record):
            assert isinstance(validate_op(op, dev.dna, host), Valid)


def test_an_altered_listing_is_invalid_at_every_authority() -> None:
    """A developer's node that skipped its own checks: its listing's ops are refused."""
    all_cells = cells()
    dev = all_cells[DEV]
    action = published(all_cells, manifest())
    record = dev.get(action)
    assert record is not None and record.entry is not None
    altered = dataclasses.replace(manifest(), name="Free money")
    entry_bytes = altered.to_bytes()
    # the same action over a different entry, encoded as the zome would
    entry = Entry.app(encode(to_value(AppListing(entry_bytes))))
    action_changed = dataclasses.replace(record.action, created_entry=entry.hash())  # type: ignore[arg-type]
    forged = Record(SignedAction.sign(action_changed, DEV), entry)
    outcomes = [
        validate_op(op, dev.dna, SourceHost(dev.dna, dev.store)) for op in publishable_ops(forged)
    ]
    assert any(isinstance(o, Invalid) and "altered or forged" in o.reason for o in outcomes)


# ------------------------------------------------------------------------------ installations


def test_the_manager_installs_exactly_what_the_manifest_asks() -> None:
    all_cells = cells()
    m = manifest()
    listing = published(all_cells, m)
    c = charter()
    manager = all_cells[MANAGER]
    payload = {
        "installation": installation_of(m, c).to_bytes(),
        "charter": c.to_bytes(),
        "listing_at": listing,
    }
    action = manager.call("appstore", "install", payload, now_us=NOW)
    [(at, found)] = manager.call("appstore", "installed", None, now_us=NOW)
    assert at == action and found.app == "board-test"
    host = SourceHost(manager.dna, manager.store)
    record = manager.get(action)
    assert record is not None
    for op in publishable_ops(record):
        assert isinstance(validate_op(op, manager.dna, host), Valid)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"granted": (Capability("power_w", Access.SEE),)}, "exactly the capabilities"),
        ({"manifest": ExternalHash.of(b"another")}, "another manifest"),
        ({"community": ExternalHash.of(b"elsewhere")}, "another community"),
        ({"settings": "[1]"}, "JSON object"),
    ],
)
def test_a_bad_installation_is_refused(change: dict[str, object], reason: str) -> None:
    all_cells = cells()
    m = manifest()
    listing = published(all_cells, m)
    c = charter()
    bad = installation_of(m, c, **change)
    payload = {"installation": bad.to_bytes(), "charter": c.to_bytes(), "listing_at": listing}
    with pytest.raises((ZomeCallError, ValidationError), match=reason):
        all_cells[MANAGER].call("appstore", "install", payload, now_us=NOW)


def test_nobody_installs_into_someone_elses_community() -> None:
    all_cells = cells()
    m = manifest()
    listing = published(all_cells, m)
    c = charter()
    payload = {
        "installation": installation_of(m, c).to_bytes(),
        "charter": c.to_bytes(),
        "listing_at": listing,
    }
    with pytest.raises(ValidationError, match="installed by the community's manager"):
        all_cells[STRANGER].call("appstore", "install", payload, now_us=NOW)
    unsigned = dataclasses.replace(installation_of(m, c), signatures=())
    forged = unsigned.signed_by(STRANGER)
    payload["installation"] = forged.to_bytes()
    with pytest.raises(ZomeCallError, match="not signed by the community's manager"):
        all_cells[MANAGER].call("appstore", "install", payload, now_us=NOW)
    assert INSTALLATION_CONTEXT == b"ioe/appstore/installation/v1"


def test_a_subscription_payment_must_cite_a_real_fee_to_the_developer() -> None:
    all_cells = cells()
    m = manifest()
    listing = published(all_cells, m)
    c = charter()
    manager = all_cells[MANAGER]
    payload = {
        "installation": installation_of(m, c).to_bytes(),
        "charter": c.to_bytes(),
        "listing_at": listing,
    }
    installed = manager.call("appstore", "install", payload, now_us=NOW)
    genesis = manager.query()[0].action_hash  # not a transfer
    with pytest.raises(ValidationError, match="transfer"):
        manager.call(
            "appstore",
            "record_payment",
            {"installation_at": installed, "transfer_at": genesis, "period": 0},
            now_us=NOW,
        )
    with pytest.raises(ValidationError, match="a period is"):
        manager.call(
            "appstore",
            "record_payment",
            {"installation_at": installed, "transfer_at": genesis, "period": -1},
            now_us=NOW,
        )
    assert SubscriptionPayment.__dataclass_fields__.keys() == {
        "installation_at",
        "transfer_at",
        "period",
    }


def test_the_currency_zome_is_where_payments_say_it_is() -> None:
    assert core_dna().integrity_zomes[CURRENCY_ZOME_INDEX].name == "currency"


# ------------------------------------------------------------------------------ the membrane


def _membership(account: OwnerAccount, device: KeyPair, c: CommunityCharter) -> CommunityMembership:
    unsigned = CommunityMembership(
        1, c.id, device.agent, MemberKind.DEVICE, Role.MEMBER, (Access.SEE,), NOW
    )
    return unsigned.signed_as_manager(authorization_key_for(MANAGER)).signed_as_owner(
        account.authorization_key()
    )


def test_the_app_membrane_admits_a_member_device_under_its_app_key_and_nobody_else() -> None:
    account = OwnerAccount.from_root_seed(bytes([7]) * 32)
    device = device_agent_key(account.device_seed(1), 0)
    certificate = device_certificate(account, 1).to_bytes()
    c = charter()
    installation = ExternalHash.of(b"an installation")
    dna = app_dna("board/1", c.id, installation, "board-test", core_dna())
    app_key = device_agent_key(account.device_seed(1), app_agent_index(bytes(installation)))
    assert app_key.agent != device.agent  # its own key, from the same device seed

    def proof(**change: object) -> bytes:
        fields = {
            "charter": c.to_bytes(),
            "membership": _membership(account, device, c).to_bytes(),
            "member_proof": certificate,
        }
        fields.update(change)  # type: ignore[arg-type]
        return app_membership(device, app_key.agent, installation, **fields).to_bytes()  # type: ignore[arg-type]

    assert isinstance(dna.check_membrane(app_key.agent, proof()), Valid)
    # the same proof for another key, another installation's network, or a stranger's word
    assert "another app key" in dna.check_membrane(device.agent, proof()).reason  # type: ignore[union-attr]
    other = app_dna("board/1", c.id, ExternalHash.of(b"other"), "board-test", core_dna())
    assert "another installation" in other.check_membrane(app_key.agent, proof()).reason  # type: ignore[union-attr]
    unsigned_by_owner = dataclasses.replace(
        _membership(account, device, c), owner_signatures=()
    ).to_bytes()
    refused = dna.check_membrane(app_key.agent, proof(membership=unsigned_by_owner))
    assert isinstance(refused, Invalid) and "member's owner" in refused.reason
    refused = dna.check_membrane(app_key.agent, proof(membership=b""))
    assert isinstance(refused, Invalid) and "only the community's manager" in refused.reason
    assert isinstance(dna.check_membrane(app_key.agent, None), Invalid)
    assert isinstance(dna.check_membrane(app_key.agent, b"\xff garbage"), Invalid)


def test_the_manager_joins_its_app_networks_with_its_owner_membership() -> None:
    c = charter()
    installation = ExternalHash.of(b"an installation")
    dna = app_dna("board/1", c.id, installation, "board-test", core_dna())
    app_key = KeyPair(bytes([99]) * 32)
    doc = app_membership(
        MANAGER, app_key.agent, installation, charter=c.to_bytes(), membership=b"",
        member_proof=membrane_proof_for(MANAGER),
    )  # fmt: skip
    assert isinstance(dna.check_membrane(app_key.agent, doc.to_bytes()), Valid)
    stranger = app_membership(
        STRANGER, app_key.agent, installation, charter=c.to_bytes(), membership=b"",
        member_proof=membrane_proof_for(STRANGER),
    )  # fmt: skip
    assert isinstance(dna.check_membrane(app_key.agent, stranger.to_bytes()), Invalid)


def test_an_unknown_app_dna_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="runs no app DNA"):
        app_dna("miner/1", ExternalHash.of(b"c"), ExternalHash.of(b"i"), "x", core_dna())
    assert "board/1" in APP_DNAS
