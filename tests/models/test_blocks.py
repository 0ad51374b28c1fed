"""Blocks: every registered block of a kind through its kind's constructor and forward with
a table of (kind, input shapes, expected shape), then the formulas on hand-made inputs
(MONAI habit)."""

from __future__ import annotations

import inspect

import pytest
import torch

from lidcseg.models.blocks.boundary import boundary_weights
from lidcseg.models.blocks.cbam import CBAM
from lidcseg.models.blocks.reverse import reverse_weights
from lidcseg.models.registry import (
    KINDS,
    block_kind,
    block_names,
    block_options,
    build_block,
    get_block,
)
from tests.support.defaults import DEFAULTS

CONFIG = block_options(DEFAULTS.models.as_dict())
# The other reading of every open point the blocks take, all changed at once.
OTHER = {
    "reduction": 8,
    "cbam_form": "official",
    "aspp_rates": (1, 6, 12, 18),
    "aspp_form": "deeplab",
    "boundary_formula": "gradient",
    "boundary_residual": not CONFIG["boundary_residual"],
}

# (kind, the shapes of x and of the kind's other inputs in forward's order, the output's
# shape): a gate of another width and a coarser size; sides not powers of two.
SHAPES = [
    ("attention", [(2, 32, 9, 7), (2, 64, 5, 4)], (2, 32, 9, 7)),
    ("attention", [(1, 64, 5, 12), (1, 64, 5, 12)], (1, 64, 5, 12)),
    ("aspp", [(2, 64, 11, 13)], (2, 64, 11, 13)),
    ("aspp", [(1, 256, 16, 16)], (1, 256, 16, 16)),
    ("reverse", [(2, 8, 6, 5), (2, 1, 6, 5)], (2, 8, 6, 5)),
    ("boundary", [(2, 8, 6, 5), (2, 1, 6, 5)], (2, 8, 6, 5)),
    ("fusion", [(2, 16, 10, 10), (2, 1, 10, 10)], (2, 16, 10, 10)),
]
CASES = [(kind, name, shapes, out) for kind, shapes, out in SHAPES for name in block_names(kind)]


@pytest.mark.parametrize("options", [CONFIG, OTHER], ids=["config", "other"])
@pytest.mark.parametrize("kind, name, shapes, expected", CASES)
def test_every_block_keeps_the_skips_shape(kind, name, shapes, expected, options):
    named = dict(zip(("x", *KINDS[kind].inputs), shapes, strict=True))
    block = build_block(name, named["x"][1], named.get("gate", (0, 0))[1], options).eval()
    with torch.no_grad():
        out = block(*(torch.rand(shape) for shape in shapes))
    assert out.shape == expected and torch.isfinite(out).all()


def test_every_kind_has_a_block_and_a_row():
    assert all(block_names(kind) for kind in KINDS)
    assert {kind for kind, _, _ in SHAPES} == set(KINDS)


@pytest.mark.parametrize("name", block_names())
def test_every_block_has_its_kinds_constructor_and_forward(name):
    """One signature per kind, and no defaults: every value is config's."""
    kind = KINDS[block_kind(name)]
    init = list(inspect.signature(get_block(name).__init__).parameters.values())[1:]
    assert [p.name for p in init] == ["channels", *kind.keywords]
    assert all(p.kind is p.KEYWORD_ONLY for p in init[1:])
    forward = list(inspect.signature(get_block(name).forward).parameters.values())[1:]
    assert [p.name for p in forward] == ["x", *kind.inputs]
    assert all(p.default is p.empty for p in init + forward)


def test_cbam_channel_weights_are_sigmoid_of_the_mlp_sums():
    cbam = CBAM(8, gate_channels=8, reduction=2, cbam_form="paper").eval()
    x = torch.randn(3, 8, 6, 7)
    mlp = cbam.channel.mlp
    expected = torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(cbam.channel(x), expected)
    refined = expected * x
    spatial = torch.sigmoid(
        cbam.spatial.conv(
            torch.cat([refined.mean(1, keepdim=True), refined.amax(1, keepdim=True)], 1)
        )
    )
    torch.testing.assert_close(cbam(x, x), spatial * refined)


def test_reverse_attention_of_zeros_is_ones():
    torch.testing.assert_close(reverse_weights(torch.zeros(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
    torch.testing.assert_close(reverse_weights(torch.ones(1, 1, 2, 2)), torch.zeros(1, 1, 2, 2))


def test_boundary_attention_peaks_at_one_half():
    p = torch.linspace(0, 1, 101).view(1, 1, 1, -1)
    weights = boundary_weights(p, "uncertainty").flatten()
    assert weights.argmax().item() == 50 and weights[50] == 1.0
    assert weights[0] == 0 and weights[-1] == 0


@pytest.mark.parametrize("formula", ["gradient", "blur"])
def test_other_boundary_formulas_light_up_the_edge_of_a_disk(formula):
    yy, xx = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    disk = (((yy - 10) ** 2 + (xx - 10) ** 2) <= 36).float().view(1, 1, 21, 21)
    weights = boundary_weights(disk, formula)[0, 0]
    assert weights[10, 10] == 0 and weights[0, 0] == 0  # inside and far outside: nothing
    assert weights[10, 16] > 0 and weights[10, 17] > 0 or weights[10, 16] > 0  # the rim


def _boundary(residual: bool, formula: str = "uncertainty"):
    return get_block("boundary")(4, boundary_formula=formula, boundary_residual=residual)


def test_unknown_boundary_formula_fails_on_construction():
    with pytest.raises(ValueError, match="unknown boundary formula"):
        _boundary(True, "sobel")


def test_boundary_attention_residual_or_literal():
    x, p = torch.randn(2, 4, 5, 5), torch.rand(2, 1, 5, 5)
    weights = boundary_weights(p, "uncertainty")
    torch.testing.assert_close(_boundary(True)(x, p), x * (1 + weights))
    torch.testing.assert_close(_boundary(False)(x, p), x * weights)
    # a sure map (P = 0.01 everywhere) closes eq. (8)'s skip and leaves the residual one open
    sure = torch.full((2, 1, 5, 5), 0.01)
    assert _boundary(False)(x, sure).abs().max() < 0.03 * x.abs().max()
    torch.testing.assert_close(_boundary(True)(x, sure), x * 1.02)


@pytest.mark.parametrize("name, option", [("aspp", "aspp_form"), ("cbam", "cbam_form")])
def test_unknown_block_forms_fail_on_construction(name, option):
    with pytest.raises(ValueError, match="big"):
        build_block(name, 8, 8, {**CONFIG, "aspp_rates": (1, 2), option: "big"})


def test_official_cbam_has_the_mlp_biases_and_a_batch_norm():
    official = CBAM(32, gate_channels=32, reduction=16, cbam_form="official")
    paper = CBAM(32, gate_channels=32, reduction=16, cbam_form="paper")
    names = {n for n, _ in official.named_parameters()}
    assert "channel.mlp.0.bias" in names and "spatial.norm.weight" in names
    assert not {n for n, _ in paper.named_parameters()} & {
        "channel.mlp.0.bias",
        "spatial.norm.weight",
    }


@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("formula", ["uncertainty", "gradient", "blur"])
def test_rb_fusion_without_concat_is_the_same_fusion(formula, residual):
    """forward_without_concat (the rewrite the GPU check times) equals eq. (9)'s form,
    forward and backward, in float64."""
    from lidcseg.models.blocks.rbcbam import ReverseBoundaryFusion

    torch.manual_seed(0)
    block = ReverseBoundaryFusion(6, boundary_formula=formula, boundary_residual=residual)
    block = block.double().train()
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64, requires_grad=True)
    probability = torch.rand(2, 1, 9, 9, dtype=torch.float64)
    results = []
    for form in (block.forward, block.forward_without_concat):
        x.grad = None
        block.zero_grad()
        out = form(x, probability)
        out.square().sum().backward()
        results.append((out.detach(), x.grad.clone(), block.reduce[0].weight.grad.clone()))
    for expected, got in zip(*results):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
