"""One generic test that every configured variant runs through (segmentation_models habit)."""

from __future__ import annotations

import functools
import io

import pytest
import torch

from lidcseg import config
from lidcseg.models.registry import variants_from_config
from lidcseg.models.unet import build_model
from tests.support.paths import REPO

MODELS = config.load(REPO / "config.yaml").models.as_dict()
VARIANTS = variants_from_config(MODELS["variants"])


@functools.cache
def model(name: str):
    torch.manual_seed(0)
    return build_model(VARIANTS[name], MODELS, encoder_weights=None)


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("size", [(72, 72), (72, 104)])  # square and not, sides not powers of two
def test_output_shape_and_side_maps(name, size):
    net = model(name).eval()
    with torch.no_grad():
        logits, sides = net(torch.randn(2, 1, *size), return_side=True)
        plain = net(torch.randn(1, 1, *size))
    assert logits.shape == (2, 1, *size) and plain.shape == (1, 1, *size)
    assert len(sides) == 5 and all(s.shape[:2] == (2, 1) for s in sides)
    assert [s.shape[-1] for s in sides] == sorted(s.shape[-1] for s in sides)  # deepest first


def _backward(net, train: bool) -> None:
    """Gradients accumulated over three fixed, differently scaled batches: a ReLU unit of a
    small squeeze MLP can be dead for one batch at initialisation, which says nothing
    about whether the parameter is wired into the output."""
    net.train(train)
    net.zero_grad()
    generator = torch.Generator().manual_seed(0)
    for scale in (0.5, 1.0, 3.0):
        x = scale * torch.randn(2, 1, 64, 80, generator=generator)
        logits, sides = net(x, return_side=True)
        (
            logits.mean() + sum(s.mean() for s in sides)
        ).backward()  # with deep supervision of the sides


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_gradients_reach_every_parameter(name):
    net = model(name)
    _backward(net, train=True)
    missing = [
        n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert not missing, missing[:5]
    # Non-zero everywhere with batch norm frozen: in training, a convolution's bias right
    # before batch norm (MONAI's attention gate has one) is cancelled by the mean, exactly.
    _backward(net, train=False)
    silent = [n for n, p in net.named_parameters() if p.grad.abs().sum() == 0]
    assert not silent, silent[:5]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_eval_is_deterministic_and_state_dict_round_trips(name):
    net = model(name).eval()
    x = torch.randn(1, 1, 64, 72)
    with torch.no_grad():
        first, second = net(x), net(x)
    assert torch.equal(first, second)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    again = build_model(VARIANTS[name], MODELS, encoder_weights=None).eval()
    again.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        assert torch.equal(again(x), first)


def test_the_paper_variants_are_configured():
    table1 = {"se", "gate", "bam", "cbam", "rbcbam"}
    assert table1 | {"unet"} <= set(VARIANTS)
    ablation = {(v.aspp, v.reverse, v.boundary) for v in VARIANTS.values() if v.attention == "cbam"}
    assert len(ablation) == 8  # Table 2: every combination of ASPP x reverse x boundary on CBAM
    assert VARIANTS["rbcbam"].slots() == "aspp+cbam+reverse+boundary"
