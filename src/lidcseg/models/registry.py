"""Blocks by name, and variants as named combinations of slots (torchvision's
register_model / get_model shape). A block file registers its class with
``@register_block(name, kind)``; a second block of the same name is refused.

Every block of a kind is built and called the same way (``KINDS``), so the U-Net builds a
slot from its kind alone (``build_block``):

    kind       constructor                                            forward
    attention  (channels, *, gate_channels, reduction, cbam_form)     (x, gate)
    aspp       (channels, *, aspp_rates, aspp_form)                   (x)
    reverse    (channels)                                             (x, probability)
    boundary   (channels, *, boundary_formula, boundary_residual)     (x, probability)
    fusion     (channels, *, boundary_formula, boundary_residual)     (x, probability)

``x`` is the skip's feature (B, channels, H, W) and ``forward`` returns a tensor of its
shape; ``gate`` is the decoder feature below (B, gate_channels, h, w), of any size;
``probability`` the deeper level's nodule probability map (B, 1, H, W). Every keyword but
``gate_channels`` is the ``models`` key of config.yaml of that name, given to every block
of the kind whether it reads it or not, and none has a default: the value is config's.

A variant is config, never a class: ``{aspp: bool, attention: none|<attention block>,
reverse: bool, boundary: bool}``. Each slot holds a block of the kind of the slot's name:
the block the variant names, or, for a bool slot, the kind's one block. The slots of one
place on the skip (``PLACES``: reverse and boundary share the last) hold one block: the
one slot's that is on, or, when several are, the fusion block that declares exactly those
slots (``@register_block(name, "fusion", fuses=(...))``). A new attention module is one
file in ``blocks/`` and one config entry.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from lidcseg.errors import ConfigError


@dataclass(frozen=True)
class Kind:
    """How every block of a kind is built and called (the table of the module's docstring)."""

    options: tuple[str, ...]  # constructor keywords, each the ``models`` config key of its name
    inputs: tuple[str, ...]  # forward's tensors after the skip feature x

    @property
    def keywords(self) -> tuple[str, ...]:
        """The constructor's keyword-only arguments: the gate's width where ``forward`` takes
        the gate (a structural value, not config), then the config options."""
        return (("gate_channels",) if "gate" in self.inputs else ()) + self.options


KINDS = {
    "attention": Kind(options=("reduction", "cbam_form"), inputs=("gate",)),
    "aspp": Kind(options=("aspp_rates", "aspp_form"), inputs=()),
    "reverse": Kind(options=(), inputs=("probability",)),
    "boundary": Kind(options=("boundary_formula", "boundary_residual"), inputs=("probability",)),
    "fusion": Kind(options=("boundary_formula", "boundary_residual"), inputs=("probability",)),
}
# The places of a skip connection, in the paper's order (also the order its parameters are
# created in), and the slots each holds.
PLACES = {"aspp": ("aspp",), "attention": ("attention",), "focus": ("reverse", "boundary")}


@dataclass(frozen=True)
class _Entry:
    kind: str
    cls: type
    fuses: frozenset[str]


_BLOCKS: dict[str, _Entry] = {}


def register_block(name: str, kind: str, fuses: tuple[str, ...] = ()):
    """Class decorator: make the block available as ``name``; a fusion block names the slots
    it fuses (at least two, of one place)."""
    if kind not in KINDS:
        raise ValueError(f"block kind '{kind}' is not one of {tuple(KINDS)}")
    fusing = len(fuses) > 1 and any(set(fuses) <= set(slots) for slots in PLACES.values())
    if (kind == "fusion") != fusing or kind != "fusion" and fuses:
        raise ValueError(f"block '{name}': only a fusion block fuses, 2 or more slots of a place")

    def add(cls: type) -> type:
        _load_blocks()  # a block from elsewhere must not take a name before ours register
        if name in _BLOCKS:
            raise ValueError(
                f"a block named '{name}' is already registered ({_BLOCKS[name].cls.__module__})"
            )
        _BLOCKS[name] = _Entry(kind, cls, frozenset(fuses))
        return cls

    return add


def get_block(name: str) -> type:
    return _entry(name).cls


def block_kind(name: str) -> str:
    return _entry(name).kind


def block_names(kind: str | None = None) -> list[str]:
    _load_blocks()
    return sorted(n for n, entry in _BLOCKS.items() if kind is None or entry.kind == kind)


def build_block(name: str, channels: int, gate_channels: int, options: Mapping):
    """Block ``name`` on a skip of ``channels`` below a decoder feature of ``gate_channels``,
    given its kind's options from ``options`` (the models section, or what holds its keys)."""
    kind = KINDS[block_kind(name)]
    values = {**options, "gate_channels": gate_channels}
    return get_block(name)(channels, **{key: values[key] for key in kind.keywords})


def block_options(models: Mapping) -> dict:
    """The values of the models section that the blocks of every kind take."""
    return {key: models[key] for kind in KINDS.values() for key in kind.options}


def place_block(place: str, slots: Slots) -> str | None:
    """The block that ``place`` of a skip with ``slots`` holds: none when its slots are off,
    the slot's block when one is on, the fusion block that declares them when several are."""
    on = {slot: name for slot in PLACES[place] if (name := _slot_block(slot, getattr(slots, slot)))}
    if len(on) < 2:
        return next(iter(on.values()), None)
    _load_blocks()
    fused = [n for n, entry in _BLOCKS.items() if entry.fuses == set(on)]
    if len(fused) != 1:
        raise ValueError(f"slots {' + '.join(on)}: {len(fused)} fusion blocks declare them")
    return fused[0]


def _slot_block(slot: str, value: bool | str) -> str | None:
    """The block a slot's value stands for: a name, or True for the kind's one block."""
    if value is False or value == "none":
        return None
    if isinstance(value, str):
        return value
    names = block_names(slot)
    if len(names) != 1:
        raise ValueError(f"slot {slot}: a bool slot needs one block of its kind, not {names}")
    return names[0]


def _entry(name: str) -> _Entry:
    _load_blocks()
    if name not in _BLOCKS:
        raise KeyError(f"no block named '{name}' (known: {', '.join(sorted(_BLOCKS))})")
    return _BLOCKS[name]


def declared_blocks(kind: str | None = None) -> list[str]:
    """Block names as the ``@register_block(name, kind)`` lines of ``blocks/*.py`` declare
    them, read without importing torch: config validation runs on every Snakemake start
    and must stay fast. tests/models check this equals what registers on import."""
    names = []
    for path in sorted((Path(__file__).parent / "blocks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_block":
                name, its_kind = (arg.value for arg in node.args[:2])
                if kind is None or its_kind == kind:
                    names.append(name)
    return sorted(names)


def _load_blocks() -> None:
    import lidcseg.models.blocks  # noqa: F401  (importing the package registers every block)


@dataclass(frozen=True, kw_only=True)
class Slots:
    """What one skip connection holds: ASPP, an attention block, reverse and boundary attention.
    The report matches the paper's rows by slots, so a renamed variant still lands in its row."""

    aspp: bool = False
    attention: str = "none"
    reverse: bool = False
    boundary: bool = False

    @classmethod
    def of(cls, slots: dict) -> Slots:
        """The slots of a mapping that may hold more keys (a variant's name, say)."""
        return cls(**{f.name: slots[f.name] for f in fields(cls) if f.name in slots})


@dataclass(frozen=True)
class Variant(Slots):
    """A named combination of skip-connection slots."""

    name: str

    def slots(self) -> str:
        parts = (["aspp"] if self.aspp else []) + (
            [self.attention] if self.attention != "none" else []
        )
        parts += (["reverse"] if self.reverse else []) + (["boundary"] if self.boundary else [])
        return "+".join(parts) or "plain skip"


def variants_from_config(variants: dict) -> dict[str, Variant]:
    """``models.variants`` of config.yaml as Variants; an unknown attention block fails
    naming its key."""
    known = declared_blocks("attention")
    result = {}
    for name, slots in variants.items():
        attention = slots.get("attention", "none")
        if attention != "none" and attention not in known:
            raise ConfigError(
                f"models.variants.{name}.attention",
                f"'{attention}' is not an attention block (none, {', '.join(known)})",
            )
        result[name] = Variant(name=name, **slots)
    return result
