"""The registry refuses duplicates; config names blocks that exist; validation needs no torch."""

from __future__ import annotations

import copy

import pytest
import yaml

from lidcseg import config
from lidcseg.errors import ConfigError
from lidcseg.models.registry import (
    PLACES,
    Slots,
    block_kind,
    block_names,
    declared_blocks,
    get_block,
    place_block,
    register_block,
    variants_from_config,
)
from tests.support.paths import REPO


def test_a_second_block_with_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_block("cbam", "attention")(type("Other", (), {}))


def test_declared_names_equal_what_registers():
    assert declared_blocks() == block_names()
    assert declared_blocks("attention") == ["bam", "cbam", "gate", "se"]


def test_unknown_block_name():
    with pytest.raises(KeyError, match="no block named 'eca'"):
        get_block("eca")


@pytest.mark.parametrize(
    "slots, key",
    [
        ({"attention": "eca"}, "models.variants.mine.attention"),
        ({"attention": "cbam", "revers": True}, "models.variants.mine.revers"),
        ({"aspp": "yes"}, "models.variants.mine.aspp"),
    ],
)
def test_bad_variant_fails_at_validation_naming_it(slots, key):
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data = copy.deepcopy(data)
    data["models"]["variants"]["mine"] = slots
    with pytest.raises(ConfigError) as info:
        _validate_as_the_workflow_does(data)
    assert info.value.key == key


def _validate_as_the_workflow_does(data: dict) -> None:
    """common.smk and `lidcseg check-config`: the schema, then the registry's attention blocks."""
    config.validate(data)
    variants_from_config(data["models"]["variants"])


@pytest.mark.parametrize(
    "slots, kinds",
    [
        (Slots(), {}),
        (Slots(aspp=True, attention="se"), {"aspp": "aspp", "attention": "attention"}),
        (Slots(reverse=True), {"focus": "reverse"}),
        (Slots(boundary=True), {"focus": "boundary"}),
        (Slots(reverse=True, boundary=True), {"focus": "fusion"}),
    ],
)
def test_each_place_holds_its_slots_block_or_the_fusion_declaring_them(slots, kinds):
    held = {place: place_block(place, slots) for place in PLACES}
    assert {place: block_kind(name) for place, name in held.items() if name} == kinds


@pytest.mark.parametrize(
    "kind, fuses",
    [("fusion", ()), ("fusion", ("reverse",)), ("attention", ("reverse", "boundary"))],
)
def test_only_a_fusion_block_fuses_and_it_fuses_slots_of_one_place(kind, fuses):
    with pytest.raises(ValueError, match="only a fusion block fuses"):
        register_block("mine", kind, fuses=fuses)
