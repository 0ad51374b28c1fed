"""Blocks: tables of (arguments, input shape, expected shape), and the formulas on hand-made
inputs (MONAI habit)."""

from __future__ import annotations

import pytest
import torch

from lidcseg.models.blocks.boundary import boundary_weights
from lidcseg.models.blocks.cbam import CBAM
from lidcseg.models.blocks.reverse import reverse_weights
from lidcseg.models.registry import get_block

SHAPES = [
    ("se", {"channels": 32}, (2, 32, 9, 7)),
    ("bam", {"channels": 32}, (2, 32, 9, 7)),
    ("cbam", {"channels": 64, "reduction": 8}, (1, 64, 5, 12)),
    ("aspp", {"channels": 64, "rates": (1, 2, 3, 4)}, (2, 64, 11, 13)),
    ("aspp", {"channels": 256}, (1, 256, 16, 16)),
    ("aspp", {"channels": 64, "rates": (1, 2, 3, 4), "form": "deeplab"}, (2, 64, 11, 13)),
    ("cbam", {"channels": 32, "form": "official"}, (2, 32, 9, 7)),
    ("rbcbam", {"channels": 16, "boundary_residual": False}, (2, 16, 10, 10)),
    ("rbcbam", {"channels": 16}, (2, 16, 10, 10)),
]


@pytest.mark.parametrize("name, args, shape", SHAPES)
def test_blocks_keep_the_shape(name, args, shape):
    block = get_block(name)(**args).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        out = block(x, torch.rand(shape[0], 1, *shape[2:])) if name == "rbcbam" else block(x)
    assert out.shape == shape


def test_gate_takes_a_coarser_gating_signal():
    gate = get_block("gate")(channels=32, gate_channels=64).eval()
    with torch.no_grad():
        out = gate(torch.randn(2, 32, 20, 18), torch.randn(2, 64, 10, 9))
    assert out.shape == (2, 32, 20, 18)
    with pytest.raises(ValueError, match="gating signal"):
        gate(torch.randn(2, 32, 20, 18))


@pytest.mark.parametrize("name", ["reverse", "boundary"])
def test_focus_blocks_keep_the_shape(name):
    out = get_block(name)()(torch.randn(2, 8, 6, 5), torch.rand(2, 1, 6, 5))
    assert out.shape == (2, 8, 6, 5)


def test_cbam_channel_weights_are_sigmoid_of_the_mlp_sums():
    cbam = CBAM(8, reduction=2).eval()
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
    torch.testing.assert_close(cbam(x), spatial * refined)


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


def test_unknown_boundary_formula_fails_on_construction():
    with pytest.raises(ValueError, match="unknown boundary formula"):
        get_block("boundary")("sobel")


def test_boundary_attention_is_residual_by_default_and_literal_on_request():
    x, p = torch.randn(2, 4, 5, 5), torch.rand(2, 1, 5, 5)
    weights = boundary_weights(p)
    torch.testing.assert_close(get_block("boundary")()(x, p), x * (1 + weights))
    torch.testing.assert_close(get_block("boundary")(residual=False)(x, p), x * weights)
    # a sure map (P = 0.01 everywhere) closes eq. (8)'s skip and leaves the residual one open
    sure = torch.full((2, 1, 5, 5), 0.01)
    assert get_block("boundary")(residual=False)(x, sure).abs().max() < 0.03 * x.abs().max()
    torch.testing.assert_close(get_block("boundary")()(x, sure), x * 1.02)


@pytest.mark.parametrize(
    "block, args",
    [
        ("aspp", {"channels": 8, "rates": (1, 2), "form": "big"}),
        ("cbam", {"channels": 8, "form": "big"}),
    ],
)
def test_unknown_block_forms_fail_on_construction(block, args):
    with pytest.raises(ValueError, match="big"):
        get_block(block)(**args)


def test_official_cbam_has_the_mlp_biases_and_a_batch_norm():
    names = {n for n, _ in CBAM(32, form="official").named_parameters()}
    assert "channel.mlp.0.bias" in names and "spatial.norm.weight" in names
    assert not {n for n, _ in CBAM(32).named_parameters()} & {
        "channel.mlp.0.bias",
        "spatial.norm.weight",
    }
