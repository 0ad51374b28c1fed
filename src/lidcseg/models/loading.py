"""A trained model rebuilt from its model file (``core/model_file.py``): the variant's slots
and the models settings saved inside it build the network, then its weights are loaded."""

from __future__ import annotations

import os

import torch

from lidcseg.core.model_file import CheckpointError, ModelFile
from lidcseg.models.registry import Variant
from lidcseg.models.unet import build_model


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[torch.nn.Module, ModelFile]:
    """A model.pt written by training (weights only), rebuilt from the settings inside it."""
    saved = ModelFile.load(path)
    if saved.state_dict is None:
        raise CheckpointError(f"{path}: holds no weights (training ended before its first epoch?)")
    model = build_model(Variant(**saved.slots), saved.models, encoder_weights=None)
    model.load_state_dict(saved.state_dict)
    return model.to(device), saved
