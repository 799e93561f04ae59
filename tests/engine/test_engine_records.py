"""Actions, entries and signed actions: byte round trips, hashes, signatures and malformed input."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioe.crypto.keys import KeyPair
from ioe.encoding import encode
from ioe.engine.records import (
    ACTION_SIGNATURE_CONTEXT,
    AGENT_ENTRY_TYPE,
    MAX_ENTRY_BYTES,
    MAX_LINK_TAG_BYTES,
    MAX_MEMBRANE_PROOF_BYTES,
    Action,
    ActionType,
    AgentValidationPkg,
    AnyAction,
    AppEntryType,
    Create,
    CreateLink,
    Delete,
    DeleteLink,
    Dna,
    Entry,
    EntryKind,
    InitZomesComplete,
    Record,
    SignedAction,
    Update,
    Visibility,
)
from ioe.errors import EncodingError
from ioe.hashing import (
    ActionHash,
    DnaHash,
    EntryHash,
    ExternalHash,
    HoloHash,
    to_typed_bytes,
)

KEYS = KeyPair(b"\x07" * 32)
OTHER = KeyPair(b"\x08" * 32)
AGENT = KEYS.agent


def h(kind: type[HoloHash], n: int) -> Any:
    return kind(bytes([n]) * 32)


COMMON: dict[str, Any] = {"author": AGENT, "timestamp": 1_000, "seq": 7, "prev": h(ActionHash, 1)}
ONE_OF_EACH: list[AnyAction] = [
    Dna(AGENT, 1_000, 0, None, h(DnaHash, 2)),
    AgentValidationPkg(AGENT, 1_000, 1, h(ActionHash, 1), b"proof"),
    AgentValidationPkg(AGENT, 1_000, 1, h(ActionHash, 1), None),
    InitZomesComplete(**COMMON),
    Create(**COMMON, app_entry_type=AppEntryType(3, 4), created_entry=h(EntryHash, 5)),
    Update(
        **COMMON,
        app_entry_type=AppEntryType(0, 1, Visibility.PRIVATE),
        created_entry=h(EntryHash, 5),
        original_action=h(ActionHash, 6),
        original_entry=h(EntryHash, 7),
    ),
    Delete(**COMMON, deletes_action=h(ActionHash, 8), deletes_entry=h(EntryHash, 9)),
    CreateLink(
        **COMMON,
        base=h(EntryHash, 10),
        target=h(ExternalHash, 11),
        zome_index=2,
        link_type=3,
        tag=b"tag",
    ),
    DeleteLink(**COMMON, link_add=h(ActionHash, 12), base=h(EntryHash, 10)),
]

digests = st.binary(min_size=32, max_size=32)


def hashes(kind: type[HoloHash]) -> st.SearchStrategy[Any]:
    return digests.map(kind)


any_hash = st.sampled_from([ActionHash, EntryHash, DnaHash, ExternalHash, type(AGENT)]).flatmap(
    hashes
)
small = st.integers(0, 255)
entry_types = st.builds(AppEntryType, small, small, st.sampled_from(Visibility))
common = {
    "author": st.just(AGENT),
    "timestamp": st.integers(0, 2**64 - 1),
    "seq": st.integers(0, 2**64 - 1),
    "prev": st.none() | hashes(ActionHash),
}
actions = st.one_of(
    st.builds(Dna, **common, dna_hash=hashes(DnaHash)),
    st.builds(AgentValidationPkg, **common, membrane_proof=st.none() | st.binary(max_size=100)),
    st.builds(InitZomesComplete, **common),
    st.builds(Create, **common, app_entry_type=entry_types, created_entry=hashes(EntryHash)),
    st.builds(
        Update,
        **common,
        app_entry_type=entry_types,
        created_entry=hashes(EntryHash),
        original_action=hashes(ActionHash),
        original_entry=hashes(EntryHash),
    ),
    st.builds(Delete, **common, deletes_action=hashes(ActionHash), deletes_entry=hashes(EntryHash)),
    st.builds(
        CreateLink,
        **common,
        base=any_hash,
        target=any_hash,
        zome_index=small,
        link_type=small,
        tag=st.binary(max_size=MAX_LINK_TAG_BYTES),
    ),
    st.builds(DeleteLink, **common, link_add=hashes(ActionHash), base=any_hash),
)


def assert_same_action(a: Action, b: Action) -> None:
    """Equal field by field, and of the same types (hashes compare as plain bytes)."""
    assert type(a) is type(b)
    assert a == b
    for f in dataclasses.fields(a):
        assert type(getattr(a, f.name)) is type(getattr(b, f.name)), f.name


def test_one_of_each_covers_every_action_type() -> None:
    assert {a.TYPE for a in ONE_OF_EACH} == set(ActionType)


@pytest.mark.parametrize("action", ONE_OF_EACH, ids=lambda a: type(a).__name__)
def test_every_action_type_round_trips(action: AnyAction) -> None:
    signed = SignedAction.sign(action, KEYS)
    data = signed.to_bytes()
    back = SignedAction.from_bytes(data)
    assert_same_action(back.action, action)
    assert back.hash == signed.hash == ActionHash.of(action.to_bytes())
    assert back.signature == signed.signature
    assert back.to_bytes() == data
    assert back.signature_valid()


@given(actions)
def test_random_actions_round_trip(action: AnyAction) -> None:
    signed = SignedAction.sign(action, KEYS)
    back = SignedAction.from_bytes(signed.to_bytes())
    assert_same_action(back.action, action)
    assert back.hash == signed.hash
    assert back.to_bytes() == signed.to_bytes()


def test_action_encoding_starts_with_the_common_fields() -> None:
    action = ONE_OF_EACH[4]
    assert action.to_value()[:5] == [int(ActionType.CREATE), AGENT, 1_000, 7, h(ActionHash, 1)]


def test_signing_requires_the_author_key() -> None:
    with pytest.raises(EncodingError, match="author"):
        SignedAction.sign(ONE_OF_EACH[0], OTHER)


def test_signature_valid_rejects_wrong_key_context_flipped_bits_and_wrong_hash() -> None:
    action = ONE_OF_EACH[4]
    signed = SignedAction.sign(action, KEYS)
    assert signed.signature_valid()
    by_other = OTHER.sign(ACTION_SIGNATURE_CONTEXT, signed.hash)
    assert not dataclasses.replace(signed, signature=by_other).signature_valid()
    other_context = KEYS.sign(b"ioe/other/v1", signed.hash)
    assert not dataclasses.replace(signed, signature=other_context).signature_valid()
    for bit in (0, 7, 255, 256, 511):
        flipped = bytearray(signed.signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not dataclasses.replace(signed, signature=bytes(flipped)).signature_valid()
    assert not dataclasses.replace(signed, hash=h(ActionHash, 0)).signature_valid()


def test_a_tampered_action_gets_another_hash_and_its_signature_fails() -> None:
    signed = SignedAction.sign(ONE_OF_EACH[4], KEYS)
    data = bytearray(signed.to_bytes())
    data[data.index(h(EntryHash, 5)) + 3] ^= 1  # a byte of created_entry
    back = SignedAction.from_bytes(bytes(data))
    assert back.hash != signed.hash
    assert not back.signature_valid()


# ------------------------------------------------------------------------------ malformed input

SIG = bytes(64)
CREATE_VALUE = ONE_OF_EACH[4].to_value()
LINK_VALUE = ONE_OF_EACH[7].to_value()


def with_item(value: list[Any], index: int, item: Any) -> list[Any]:
    changed = list(value)
    changed[index] = item
    return changed


def avp(proof: Any) -> list[Any]:
    return [int(ActionType.AGENT_VALIDATION_PKG), AGENT, 0, 1, h(ActionHash, 1), proof]


MALFORMED: dict[str, Any] = {
    "not an array": {"action": CREATE_VALUE, "signature": SIG},
    "one item": [CREATE_VALUE],
    "three items": [CREATE_VALUE, SIG, SIG],
    "short signature": [CREATE_VALUE, bytes(63)],
    "long signature": [CREATE_VALUE, bytes(65)],
    "text signature": [CREATE_VALUE, "x" * 64],
    "action not an array": [{"type": 3}, SIG],
    "action of four items": [CREATE_VALUE[:4], SIG],
    "unknown type 8": [with_item(CREATE_VALUE, 0, 8), SIG],
    "negative type": [with_item(CREATE_VALUE, 0, -1), SIG],
    "type as text": [with_item(CREATE_VALUE, 0, "3"), SIG],
    "type as bool": [with_item(CREATE_VALUE, 0, True), SIG],
    "Create with an extra field": [[*CREATE_VALUE, b""], SIG],
    "Create missing a field": [CREATE_VALUE[:-1], SIG],
    "InitZomesComplete with a field": [
        [int(ActionType.INIT_ZOMES_COMPLETE), AGENT, 0, 3, None, 1],
        SIG,
    ],
    "author of 31 bytes": [with_item(CREATE_VALUE, 1, bytes(31)), SIG],
    "author as text": [with_item(CREATE_VALUE, 1, "agent"), SIG],
    "author typed": [with_item(CREATE_VALUE, 1, to_typed_bytes(AGENT)), SIG],
    "negative timestamp": [with_item(CREATE_VALUE, 2, -1), SIG],
    "timestamp as bool": [with_item(CREATE_VALUE, 2, True), SIG],
    "timestamp as bytes": [with_item(CREATE_VALUE, 2, b"\x01"), SIG],
    "negative seq": [with_item(CREATE_VALUE, 3, -1), SIG],
    "seq as text": [with_item(CREATE_VALUE, 3, "7"), SIG],
    "prev of 33 bytes": [with_item(CREATE_VALUE, 4, bytes(33)), SIG],
    "prev as int": [with_item(CREATE_VALUE, 4, 0), SIG],
    "entry type of two items": [with_item(CREATE_VALUE, 5, [3, 4]), SIG],
    "entry type zome 256": [with_item(CREATE_VALUE, 5, [256, 4, 0]), SIG],
    "entry type index -1": [with_item(CREATE_VALUE, 5, [3, -1, 0]), SIG],
    "entry type visibility 2": [with_item(CREATE_VALUE, 5, [3, 4, 2]), SIG],
    "entry type visibility bool": [with_item(CREATE_VALUE, 5, [3, 4, False]), SIG],
    "entry type as map": [with_item(CREATE_VALUE, 5, {"zome": 3}), SIG],
    "entry hash of 31 bytes": [with_item(CREATE_VALUE, 6, bytes(31)), SIG],
    "link base untyped": [with_item(LINK_VALUE, 5, bytes(32)), SIG],
    "link base unknown prefix": [with_item(LINK_VALUE, 5, b"\x00\x00\x00" + bytes(32)), SIG],
    "link target as int": [with_item(LINK_VALUE, 6, 5), SIG],
    "link zome 256": [with_item(LINK_VALUE, 7, 256), SIG],
    "link type -1": [with_item(LINK_VALUE, 8, -1), SIG],
    "link type as bool": [with_item(LINK_VALUE, 8, True), SIG],
    "link tag as text": [with_item(LINK_VALUE, 9, "tag"), SIG],
    "link tag oversize": [with_item(LINK_VALUE, 9, bytes(MAX_LINK_TAG_BYTES + 1)), SIG],
    "membrane proof as text": [avp("proof"), SIG],
    "membrane proof oversize": [avp(bytes(MAX_MEMBRANE_PROOF_BYTES + 1)), SIG],
    "signed action oversize": [avp(bytes(MAX_MEMBRANE_PROOF_BYTES + 2048)), SIG],
    "dna hash missing": [[int(ActionType.DNA), AGENT, 0, 0, None], SIG],
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_from_bytes_rejects_malformed_arrays(value: Any) -> None:
    with pytest.raises(EncodingError):
        SignedAction.from_bytes(encode(value))


def test_from_bytes_rejects_non_canonical_bytes() -> None:
    data = SignedAction.sign(ONE_OF_EACH[4], KEYS).to_bytes()
    with pytest.raises(EncodingError):
        SignedAction.from_bytes(data + b"\x00")
    with pytest.raises(EncodingError):
        SignedAction.from_bytes(data[:-1])


def test_largest_membrane_proof_is_accepted() -> None:
    action = AgentValidationPkg(AGENT, 0, 1, h(ActionHash, 1), bytes(MAX_MEMBRANE_PROOF_BYTES))
    back = SignedAction.from_bytes(SignedAction.sign(action, KEYS).to_bytes())
    assert back.action == action


# ---------------------------------------------------------------------------------------- entries


@given(st.binary(max_size=200))
def test_app_entry_round_trip(payload: bytes) -> None:
    entry = Entry.app(payload)
    data = entry.to_bytes()
    assert data == encode([0, payload])
    back = Entry.from_bytes(data)
    assert back == entry
    assert back.kind is EntryKind.APP
    assert back.hash() == entry.hash() == EntryHash.of(data)


def test_agent_entry_round_trip() -> None:
    entry = Entry.agent(AGENT)
    back = Entry.from_bytes(entry.to_bytes())
    assert back.kind is EntryKind.AGENT
    assert back.payload == bytes(AGENT)
    assert back.hash() == entry.hash()
    with pytest.raises(EncodingError, match="not an app entry"):
        back.app_value()


def test_app_value_decodes_the_payload() -> None:
    assert Entry.app(encode({"a": [1, 2]})).app_value() == {"a": [1, 2]}
    with pytest.raises(EncodingError):
        Entry.app(b"\xff").app_value()


@pytest.mark.parametrize(
    "value",
    [
        {"kind": 0},
        [0],
        [0, b"x", b"y"],
        [0, "text payload"],
        [2, b"x"],
        [-1, b"x"],
        [1, bytes(31)],
        [1, bytes(33)],
        [False, b"x"],  # same meaning as [0, b"x"], another hash
        [True, bytes(32)],
    ],
    ids=repr,
)
def test_entry_from_bytes_rejects_malformed(value: Any) -> None:
    with pytest.raises(EncodingError):
        Entry.from_bytes(encode(value))


def test_entry_size_limit() -> None:
    assert Entry.from_bytes(Entry.app(bytes(MAX_ENTRY_BYTES)).to_bytes()).payload == bytes(
        MAX_ENTRY_BYTES
    )
    with pytest.raises(EncodingError, match="limit"):
        Entry.from_bytes(Entry.app(bytes(MAX_ENTRY_BYTES + 16)).to_bytes())


def test_record_privacy_follows_the_entry_type() -> None:
    public = SignedAction.sign(ONE_OF_EACH[4], KEYS)
    private = SignedAction.sign(ONE_OF_EACH[5], KEYS)
    assert not Record(public).is_private()
    assert Record(private).is_private()
    assert not Record(SignedAction.sign(ONE_OF_EACH[6], KEYS)).is_private()


def test_entry_type_value_round_trip() -> None:
    for entry_type in (AppEntryType(0, 0), AppEntryType(255, 255, Visibility.PRIVATE)):
        assert AppEntryType.from_value(entry_type.to_value()) == entry_type
    assert AGENT_ENTRY_TYPE.to_value() == [255, 0, 0]
