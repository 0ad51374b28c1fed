"""Blocks by name, and variants as named combinations of slots (torchvision's
register_model / get_model shape). A block file registers its class with
``@register_block(name, kind)``; a second block of the same name is refused.

A variant is config, never a class: ``{aspp: bool, attention: none|<attention block>,
reverse: bool, boundary: bool}``. A new attention module is one file in ``blocks/`` and one
config entry.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, fields
from pathlib import Path

from lidcseg.errors import ConfigError

_BLOCKS: dict[str, tuple[str, type]] = {}
KINDS = ("attention", "aspp", "reverse", "boundary", "fusion")


def register_block(name: str, kind: str):
    """Class decorator: make the block available as ``name``."""
    if kind not in KINDS:
        raise ValueError(f"block kind '{kind}' is not one of {KINDS}")

    def add(cls: type) -> type:
        _load_blocks()  # a block from elsewhere must not take a name before ours register
        if name in _BLOCKS:
            raise ValueError(
                f"a block named '{name}' is already registered ({_BLOCKS[name][1].__module__})"
            )
        _BLOCKS[name] = (kind, cls)
        return cls

    return add


def get_block(name: str) -> type:
    _load_blocks()
    if name not in _BLOCKS:
        raise KeyError(f"no block named '{name}' (known: {', '.join(sorted(_BLOCKS))})")
    return _BLOCKS[name][1]


def block_names(kind: str | None = None) -> list[str]:
    _load_blocks()
    return sorted(n for n, (k, _) in _BLOCKS.items() if kind is None or k == kind)


def declared_blocks(kind: str | None = None) -> list[str]:
    """Block names as the ``@register_block(name, kind)`` lines of ``blocks/*.py`` declare
    them, read without importing torch: config validation runs on every Snakemake start
    and must stay fast. tests/models check this equals what registers on import."""
    names = []
    for path in sorted((Path(__file__).parent / "blocks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_block":
                name, block_kind = (arg.value for arg in node.args[:2])
                if kind is None or block_kind == kind:
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
