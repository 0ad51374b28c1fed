"""Atrous spatial pyramid pooling on a skip connection (Chen et al. DeepLab / Rethinking
Atrous Convolution. 2017), as docs/paper.md, "ASPP" describes it: four parallel 3 x 3
convolutions with different dilation rates, concatenated, fused by a 1 x 1 convolution.
MONAI's SimpleASPP is that block: linear branches (a bias each, no normalisation or
activation), then the 1 x 1 fusion followed by batch norm and ReLU. Each branch has C/4
channels so the concatenation and the output keep the skip's width C (and the cost stays
near one 3 x 3 convolution's). ``aspp_form="deeplab"`` puts DeepLab v3's batch norm and ReLU
after every branch as well."""

from __future__ import annotations

import torch
from monai.networks.blocks import SimpleASPP
from torch import nn

from lidcseg.models.registry import register_block


@register_block("aspp", "aspp")
class ASPP(nn.Module):
    """Atrous spatial pyramid pooling of a skip connection's feature, keeping its width.

    Based on: Chen, Papandreou, Schroff, Adam, "Rethinking Atrous Convolution for Semantic
    Image Segmentation" (DeepLab v3), arXiv:1706.05587, 2017. docs/paper.md, "ASPP": on
    every skip connection (no numbered equation): parallel atrous 3 x 3 convolutions with
    different dilation rates, concatenated along channels and fused by a 1 x 1 convolution.
    MONAI's SimpleASPP is that block; each branch has C / len(rates) channels, so the
    concatenation and the output keep the skip's width C (and the cost stays near one 3 x 3
    convolution's).

    Args:
        channels: C, the skip's channels, in and out; must divide evenly among the branches.
        aspp_rates: the dilation of each 3 x 3 branch, one branch per rate (the paper leaves
            them open: e.g. 1, 6, 12, 18 or 1, 2, 4, 6).
        aspp_form: ``simple`` (MONAI's SimpleASPP: linear branches with a bias each, then the
            1 x 1 fusion with batch norm and ReLU; the paper's wording) or ``deeplab``
            (DeepLab v3: conv + BN + ReLU on each branch and
            on the fusion; its image-pooling branch left out, as the paper lists none).

    Raises:
        ValueError: when ``channels`` does not split into ``len(rates)`` branches, or an
            unknown ``form``.
    """

    def __init__(self, channels: int, *, aspp_rates: tuple[int, ...], aspp_form: str):
        super().__init__()
        rates, form = tuple(aspp_rates), aspp_form
        if channels % len(rates):
            raise ValueError(f"ASPP: {channels} channels do not split into {len(rates)} branches")
        if form == "simple":
            self.block = SimpleASPP(
                spatial_dims=2,
                in_channels=channels,
                conv_out_channels=channels // len(rates),
                kernel_sizes=(3,) * len(rates),
                dilations=rates,
                acti_type="RELU",
            )
        elif form == "deeplab":
            self.block = DeepLabASPP(channels, rates)
        else:
            raise ValueError(f"ASPP: unknown form {form!r} (simple or deeplab)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            cin, cout, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DeepLabASPP(nn.Module):
    """DeepLab v3's ASPP branches and fusion (Chen et al. 2017, section 3.3): every atrous
    branch and the 1 x 1 projection followed by batch norm and ReLU."""

    def __init__(self, channels: int, rates: tuple[int, ...]):
        super().__init__()
        width = channels // len(rates)
        self.branches = nn.ModuleList(_conv_bn_relu(channels, width, 3, rate) for rate in rates)
        self.fuse = _conv_bn_relu(width * len(rates), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))
