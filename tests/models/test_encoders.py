"""Pretrained weights in torchvision's format, offline: every tensor lands, conv1 becomes
1-channel."""

from __future__ import annotations

import pytest
import torch

from lidcseg.errors import ConfigError
from lidcseg.models.encoders import ResNetEncoder, adapt_first_conv


def _torchvision_state_dict(name: str) -> dict:
    """What torchvision's resnet state dict holds: RGB conv1, the encoder, and the fc head."""
    torch.manual_seed(1)
    rgb = ResNetEncoder(name, in_channels=3, weights=None).net.state_dict()
    rgb = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in rgb.items()}
    rgb["fc.weight"], rgb["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    return rgb


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_every_encoder_tensor_lands_and_conv1_is_summed(tmp_path, name):
    state = _torchvision_state_dict(name)
    torch.save(state, tmp_path / "weights.pth")
    encoder = ResNetEncoder(name, in_channels=1, weights=tmp_path / "weights.pth")
    loaded = encoder.net.state_dict()
    for key, value in loaded.items():
        expected = state[key].sum(1, keepdim=True) if key == "conv1.weight" else state[key]
        torch.testing.assert_close(value, expected, msg=key)
    assert loaded["conv1.weight"].shape[1] == 1
    assert not any(k.startswith("fc.") for k in loaded)


def test_one_channel_response_equals_the_rgb_response_to_a_grey_image():
    rgb = torch.randn(8, 3, 7, 7)
    grey = torch.randn(1, 1, 20, 20)
    one = torch.nn.functional.conv2d(grey, adapt_first_conv(rgb, 1))
    three = torch.nn.functional.conv2d(grey.repeat(1, 3, 1, 1), rgb)
    torch.testing.assert_close(one, three)


def test_weights_that_do_not_fit_name_the_key(tmp_path):
    torch.save(_torchvision_state_dict("resnet18"), tmp_path / "r18.pth")
    with pytest.raises(ConfigError, match="models.encoder_weights.*does not fit resnet34"):
        ResNetEncoder("resnet34", 1, weights=tmp_path / "r18.pth")
    with pytest.raises(ConfigError, match="no such file"):
        ResNetEncoder("resnet34", 1, weights=tmp_path / "absent.pth")


def test_encoder_features_have_the_announced_widths_and_strides():
    encoder = ResNetEncoder("resnet18", 1, weights=None).eval()
    with torch.no_grad():
        features = encoder(torch.randn(1, 1, 64, 96))
    assert [f.shape[1] for f in features] == list(encoder.channels)
    assert [tuple(f.shape[-2:]) for f in features] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]


def test_imagenet_weights_come_from_torch_hubs_cache_once_fetched(tmp_path, monkeypatch):
    """`imagenet` = torchvision's published file through torch.hub; once in the cache (here
    put there by the test: this machine has no internet) nothing is fetched again."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = _torchvision_state_dict("resnet18")
    torch.save(state, cache / "resnet18-f37072fd.pth")
    encoder = ResNetEncoder("resnet18", 1, weights="imagenet")
    torch.testing.assert_close(
        encoder.net.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"]
    )
