"""ResNet encoders (He et al. Deep Residual Learning. CVPR 2016), ImageNet-pretrained when
weights are at hand (the "pretrained U-Net" of the paper, docs/paper.md, "Encoder and input
channels": the paper names no encoder; ResNet-34 is the common choice).

MONAI's 2-D ResNet has torchvision's parameter names, so torchvision's published ImageNet
weights load into it unchanged (without importing torchvision): fetched once through
``torch.hub`` (cached under ``$TORCH_HOME``), or read from a local file. A CT slice has one
channel: the first convolution's RGB filters are summed, the standard way (a grey image
repeated three times would give the same response, at a third of the cost).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from monai.networks.nets import ResNet
from torch import nn

from lidcseg.errors import ConfigError

# name: (block, layers, torchvision's ImageNet weights)
RESNETS = {
    "resnet18": (
        "basic",
        (2, 2, 2, 2),
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    ),
    "resnet34": (
        "basic",
        (3, 4, 6, 3),
        "https://download.pytorch.org/models/resnet34-b627a593.pth",
    ),
    "resnet50": (
        "bottleneck",
        (3, 4, 6, 3),
        "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    ),
}


class ResNetEncoder(nn.Module):
    """Features at 1/2 (stem), 1/4, 1/8, 1/16 and 1/32 of the input size."""

    def __init__(self, name: str, in_channels: int, weights: str | os.PathLike | None):
        super().__init__()
        if name not in RESNETS:
            raise ConfigError("models.encoder", f"'{name}' is not one of {', '.join(RESNETS)}")
        block, layers, _ = RESNETS[name]
        self.net = ResNet(
            block,
            list(layers),
            [64, 128, 256, 512],
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=2,
            shortcut_type="B",
            bias_downsample=False,
            feed_forward=False,
        )
        expansion = 4 if block == "bottleneck" else 1
        self.channels = (64, 64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion)
        if weights is not None:
            load_pretrained(self.net, name, weights, in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        stem = net.act(net.bn1(net.conv1(x)))
        f1 = net.layer1(net.maxpool(stem))
        f2 = net.layer2(f1)
        f3 = net.layer3(f2)
        return [stem, f1, f2, f3, net.layer4(f3)]


def load_pretrained(
    net: nn.Module, name: str, weights: str | os.PathLike, in_channels: int
) -> None:
    """Load torchvision-format weights (``imagenet`` = the published file, or a path), adapt
    the first convolution to ``in_channels``, and insist that every encoder tensor lands."""
    state = _read_state_dict(name, weights)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    state["conv1.weight"] = adapt_first_conv(state["conv1.weight"], in_channels)
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            "models.encoder_weights",
            f"{weights} does not fit {name}: missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}",
        )


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB filters (out, 3, k, k) for ``in_channels`` inputs: summed for one channel; for
    more, cycled and scaled by 3 / in_channels so the response keeps its size."""
    if in_channels == 3:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    cycled = weight[:, [i % 3 for i in range(in_channels)]]
    return cycled * (3.0 / in_channels)


def _read_state_dict(name: str, weights: str | os.PathLike) -> dict:
    if str(weights) == "imagenet":
        url = RESNETS[name][2]
        try:
            return torch.hub.load_state_dict_from_url(
                url, map_location="cpu", weights_only=True, progress=False
            )
        except Exception as exc:
            raise ConfigError(
                "models.encoder_weights",
                f"cannot fetch {url} ({exc}); put the file in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'}, give its path, or use null",
            ) from None
    path = Path(weights)
    if not path.is_file():
        raise ConfigError("models.encoder_weights", f"{path}: no such file")
    return torch.load(path, map_location="cpu", weights_only=True)
