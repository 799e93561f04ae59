"""What the hostile category found, kept found: each input crashed a parser with an exception
it does not document, and is now refused with the one it does."""

from __future__ import annotations

import pytest

from ioe.community.rules import RuleError, parse_rules
from ioe.crypto.keys import KeyPair
from ioe.dnas import load_network
from ioe.drivers.ocpp_cs import parse_meter_values
from ioe.zomes.appstore.entries import ManifestFileError, manifest_from_json

DEEP = "[" * 3000
DIGITS = "1" * 5000  # more digits than int() takes from text


@pytest.mark.parametrize("text", [DEEP, '{"rules": ' + DIGITS + "}"])
def test_rules_nested_too_deep_or_with_a_huge_number_are_a_rule_error(text: str) -> None:
    with pytest.raises(RuleError, match="not JSON"):
        parse_rules(text)


@pytest.mark.parametrize("text", [DEEP, '{"app": ' + DIGITS + "}"])
def test_a_manifest_nested_too_deep_or_with_a_huge_number_is_a_manifest_error(
    text: str,
) -> None:
    with pytest.raises(ManifestFileError, match="not JSON"):
        manifest_from_json(text, KeyPair(b"\x03" * 32).agent, 0)


def test_a_network_file_nested_too_deep_is_a_value_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "network.json"
    path.write_text('{"properties": ' + DEEP)
    with pytest.raises(ValueError, match="nests too deeply"):
        load_network(path)


@pytest.mark.parametrize(
    "field",
    [{"phase": {"x": 1}}, {"location": ["Outlet"]}, {"unit": {"Wh": 1}}],
    ids=["phase", "location", "unit"],
)
def test_meter_values_with_an_object_for_a_name_are_left_out(field: dict[str, object]) -> None:
    sample = {"value": "16.1", "measurand": "Current.Import", "unit": "A", **field}
    parse = parse_meter_values(
        "1.6", [{"timestamp": "2024-05-01T12:00:00Z", "sampled_value": [sample]}]
    )
    assert parse.reading.current_a is None
    assert parse.problems
