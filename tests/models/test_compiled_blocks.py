"""CBAM compiled with torch.compile (inductor) trains as it does eagerly: the same gradients,
all finite. Its max pooling is ``max(...).values`` (models/blocks/cbam.py says why amax's
gradient became NaN once compiled on a GPU); this checks the compiled backward on the CPU,
behind a conv-BN-ReLU as on a skip connection."""

import pytest
import torch
from torch import nn

from lidcseg.models.blocks.cbam import CBAM
from tests.support.compiled import compiler

pytestmark = [
    pytest.mark.slow,  # ~30-60 s of gcc on 2 cores
    pytest.mark.skipif(compiler() is None, reason="inductor needs a C++ compiler on the CPU"),
]


def _skip_with_cbam(cbam_form: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        _WithoutGate(CBAM(8, gate_channels=1, reduction=2, cbam_form=cbam_form)),
    )


class _WithoutGate(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, None)


def _gradients(model: nn.Module, forward, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    forward(x).square().mean().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("cbam_form", ["paper", "official"])
def test_compiled_cbam_gradients_equal_eager_and_are_finite(cbam_form):
    torch._dynamo.reset()
    eager, twin = _skip_with_cbam(cbam_form), _skip_with_cbam(cbam_form)
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    expected = _gradients(eager, eager, x)
    got = _gradients(twin, torch.compile(twin), x)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.isfinite(got[name]).all(), name
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6)
