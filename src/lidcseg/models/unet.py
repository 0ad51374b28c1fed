"""The one U-Net of the paper (docs/paper.md, "Model", Fig. 2): a pretrained ResNet encoder, a
U-Net decoder, and a skip module on every skip connection built from the variant's slots:

    skip -> [ASPP] -> [attention: se | bam | cbam | gate] -> [reverse / boundary / both]

Every decoder stage has a 1 x 1 side head giving a one-channel logit map. Reverse and
boundary attention at level i use the side map of level i + 1 (the stage below), upsampled;
the deepest level uses the bottleneck's side map (the choice for the level with no deeper
decoder, docs/paper.md, "Side maps"). ``forward(x, return_side=True)`` also returns the side
maps, deepest first, for deep supervision. Any input size works: every upsampling goes to
the exact size of the skip it meets.

Side maps (``models.side_maps``, the paper leaves the form open): ``residual`` makes every
stage's map the deeper map, upsampled, plus the stage's own correction, and the output the
last map plus the output head's: PraNet's cascade (Fan et al., MICCAI 2020: each reverse-
attention branch outputs a residual added to the upsampled deeper prediction, and that sum
is what is supervised). The coarse prediction then survives a reverse gate 1 - P that
erases the found nodule from the skip: the stage only has to add what the deeper level
missed, which is what reverse attention is for. ``plain``: each map from its own stage
alone (the form before deep supervision was on; measured to collapse ``cbam_r`` once its
maps are supervised: docs/training.md, "Decision log").
"""

from __future__ import annotations

import math
from dataclasses import fields

import torch
from torch import nn

from lidcseg.core.upsampling import bilinear
from lidcseg.models.encoders import ResNetEncoder
from lidcseg.models.registry import (
    KINDS,
    PLACES,
    Slots,
    Variant,
    block_kind,
    block_options,
    build_block,
    place_block,
    variants_from_config,
)

SIDE_MAPS = ("residual", "plain")


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class DecoderBlock(nn.Sequential):
    """Two 3 x 3 convolutions with batch norm and ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(*_conv_bn_relu(cin, cout), *_conv_bn_relu(cout, cout))


class SkipModule(nn.Module):
    """The places of one skip connection in the paper's order (registry.PLACES), each with
    the block the variant's slots choose there, built and called the way its kind is."""

    def __init__(self, channels: int, gate_channels: int, variant: Variant, block_options: dict):
        super().__init__()
        self.inputs = {}  # place -> the tensors its block's forward takes after the feature
        for place in PLACES:  # registers the blocks, hence their parameters, in this order
            name = place_block(place, variant)
            block = build_block(name, channels, gate_channels, block_options) if name else None
            setattr(self, place, block)
            self.inputs[place] = KINDS[block_kind(name)].inputs if name else ()

    def forward(
        self, skip: torch.Tensor, gate: torch.Tensor, side_logits: torch.Tensor
    ) -> torch.Tensor:
        for place, inputs in self.inputs.items():
            block = getattr(self, place)
            if block is not None:
                skip = block(
                    skip, *(_block_input(name, skip, gate, side_logits) for name in inputs)
                )
        return skip


def _block_input(
    name: str, skip: torch.Tensor, gate: torch.Tensor, side_logits: torch.Tensor
) -> torch.Tensor:
    """A block's input after the feature, by its name in the kind's forward (registry.KINDS)."""
    if name == "gate":
        return gate
    if name == "probability":
        # The map is a prediction, trained by its own supervision only: a gradient through
        # the gate would bend it toward whatever opens the gate (measured: boundary
        # attention then pulled its maps off the nodule and cbam_b never learned).
        return torch.sigmoid(_upsample(side_logits.detach(), skip))
    raise ValueError(f"no skip input named {name!r} (gate, probability)")


class UNet(nn.Module):
    """The pretrained U-Net of the paper with the variant's slots on every skip connection.

    A ResNet encoder (ImageNet weights or random), a decoder of two-convolution blocks, a 1 x 1
    side head on the bottleneck and on each decoder stage (the side maps that drive reverse
    and boundary attention, eqs. 5-8) and the output head.
    Paper: Hwang et al., "Boundary and Reverse Attention Module for Lung Nodule Segmentation in
    CT Images", IEMEK J. 2022 (docs/paper.md, "Model").

    Args:
        variant: which slots each skip connection holds (ASPP, attention block, reverse, boundary).
        encoder: resnet18, resnet34 or resnet50.
        encoder_weights: imagenet, a path to such weights, or None (random).
        in_channels: image channels (1 for CT).
        decoder_channels: output channels of the decoder stages, deepest first.
        output_prior: nodule probability the output head starts at (its bias).
        side_maps: ``residual`` (each side map and the output refine the upsampled deeper
            map, PraNet's cascade) or ``plain`` (each from its own stage); see the module.
        block_options: what the blocks of every kind take (registry.KINDS: reduction,
            cbam_form, aspp_rates, aspp_form, boundary_formula, boundary_residual), the
            models section's values (registry.block_options).
    """

    def __init__(
        self,
        variant: Variant,
        *,
        encoder: str,
        encoder_weights,
        in_channels: int,
        decoder_channels: tuple[int, ...],
        output_prior: float,
        side_maps: str,
        block_options: dict,
    ):
        super().__init__()
        if side_maps not in SIDE_MAPS:
            raise ValueError(f"side_maps: {side_maps!r} is not one of {SIDE_MAPS}")
        self.variant, self.residual = variant, side_maps == "residual"
        self.encoder = ResNetEncoder(encoder, in_channels, encoder_weights)
        below = self.encoder.channels[-1]
        self.bottleneck_head = nn.Conv2d(below, 1, 1)
        self.skips, self.blocks, self.side_heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for skip_channels, out in zip(self.encoder.channels[-2::-1], decoder_channels[:-1]):
            self.skips.append(SkipModule(skip_channels, below, variant, block_options))
            self.blocks.append(DecoderBlock(below + skip_channels, out))
            self.side_heads.append(nn.Conv2d(out, 1, 1))
            below = out
        self.final = DecoderBlock(below, decoder_channels[-1])
        self.head = nn.Conv2d(decoder_channels[-1], 1, 1)
        # The prior-probability init of Lin et al. (Focal Loss, 2017): with nodules < 1 % of a
        # slice, an output that starts at 0.5 spends its first hundreds of steps learning
        # "background". Only the output head: the side maps gate reverse and boundary
        # attention, and a side map at 0.01 would start boundary attention (1 - |2P - 1|)
        # almost closed (0.02), which kept boundary-only variants from learning at all.
        prior = math.log(output_prior / (1 - output_prior))
        if self.residual:
            # The side maps start at P = 0.5 (bias 0 everywhere but the output head), so that
            # every gate starts open: reverse 0.5, boundary 1 - |2P - 1| = 1. Supervision closes
            # them where the side maps become sure (background: P -> 0, A_b -> 0) within the
            # first epoch. A cascade started at the prior (P = 0.01) would start boundary
            # attention at 0.02 everywhere, a closed skip. The output head adds the prior.
            nn.init.zeros_(self.bottleneck_head.bias)
        nn.init.constant_(self.head.bias, prior)

    def forward(self, x: torch.Tensor, return_side: bool = False):
        features = self.encoder(x)
        y = features[-1]
        side = self.bottleneck_head(y)
        sides = [side]
        for skip_module, block, side_head, skip in zip(
            self.skips, self.blocks, self.side_heads, features[-2::-1]
        ):
            attended = skip_module(skip, y, side)
            y = _upsample(y, skip)
            y = block(torch.cat([y, attended], dim=1))
            side = side_head(y) + (_upsample(side, y).detach() if self.residual else 0)
            sides.append(side)
        y = self.final(_upsample(y, x))
        logits = self.head(y) + (_upsample(side, y).detach() if self.residual else 0)
        return (logits, sides) if return_side else logits


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` (a feature or a side map) bilinearly at the height and width of ``like``: an
    exact x2 wherever the input is a multiple of 32, deterministic on every device
    (core.upsampling)."""
    return bilinear(x, like.shape[-2:])


def build_model(variant: Variant, models_config: dict, encoder_weights="config") -> UNet:
    """The UNet of ``variant`` with the ``models`` section of config.yaml."""
    c = models_config
    return UNet(
        variant,
        encoder=c["encoder"],
        in_channels=c["in_channels"],
        encoder_weights=c["encoder_weights"] if encoder_weights == "config" else encoder_weights,
        decoder_channels=tuple(c["decoder_channels"]),
        output_prior=c["output_prior"],
        side_maps=c["side_maps"],
        block_options=block_options(c),
    )


def variant_markdown(models_config: dict) -> str:
    """`lidcseg models`: the variants as a Markdown table, with the paper's marks for slots and
    each one's size relative to the plain U-Net."""
    rows = variant_table(models_config)
    base = next((r["parameters"] for r in rows if r["variant"] == "unet"), rows[0]["parameters"])
    slots = [f.name for f in fields(Slots)]
    lines = [
        "| " + " | ".join(["variant", *slots, "parameters", "vs unet"]) + " |",
        "|---" * (1 + len(slots)) + "|---:|---:|",
    ]
    for r in rows:
        marks = [{True: "o", False: ""}.get(r[slot], r[slot]) for slot in slots]
        cells = [r["variant"], *marks, f"{r['parameters']:,}", f"{r['parameters'] / base:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variant_table(models_config: dict) -> list[dict]:
    """One row per configured variant: its slots and parameter count (random weights)."""
    rows = []
    for name, variant in variants_from_config(models_config["variants"]).items():
        model = build_model(variant, models_config, encoder_weights=None)
        slots = {f.name: getattr(variant, f.name) for f in fields(Slots)}
        rows.append(
            {"variant": name, **slots, "parameters": sum(p.numel() for p in model.parameters())}
        )
    return rows
