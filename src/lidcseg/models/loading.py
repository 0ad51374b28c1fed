"""A trained model rebuilt from its model file (``core/model_file.py``): the variant's slots
and the models settings saved inside it build the network, then its weights are loaded.

A model file is input like any other (copied between machines, edited, or not ours at all),
so everything in it is checked before it is used, each fault refused in one line naming the
file: the architecture (every key of the models section, as the config's schema allows it),
slots of known blocks, weights whose names and shapes are exactly the network's and finite
(a NaN weight would make every probability NaN, written as a map without a word), and an
input grid the config could have made (``resample.spacing_mm``, ``resample.image_size``, the
lung window): a grid of 100,000 x 100,000 pixels would ask for hundreds of GB per scan.
"""

from __future__ import annotations

import os
from dataclasses import fields

import torch

from lidcseg import config
from lidcseg.core.model_file import CheckpointError, ModelFile
from lidcseg.errors import ConfigError
from lidcseg.models.registry import Slots, Variant, variants_from_config
from lidcseg.models.unet import build_model

# the models section's keys a model file restates (which variants exist and run are config's)
ARCHITECTURE = tuple(
    f.name for f in fields(config.ModelsConfig) if f.name not in ("variants", "run")
)


def load_model(path: str | os.PathLike, device: torch.device) -> tuple[torch.nn.Module, ModelFile]:
    """A model.pt written by training (weights only), rebuilt from the settings inside it."""
    saved = ModelFile.load(path)
    if saved.state_dict is None:
        raise CheckpointError(f"{path}: holds no weights (training ended before its first epoch?)")
    check_model_file(saved, path)
    variant = _variant(saved, path)
    try:
        model = build_model(variant, saved.models, encoder_weights=None)
    except Exception as error:  # the schema passed it: a combination no network can take
        raise CheckpointError(f"{path}: its architecture builds no network ({error})") from None
    _check_fit(model.state_dict(), saved.state_dict, variant, path)
    model.load_state_dict(saved.state_dict)
    return model.to(device), saved


def check_model_file(saved: ModelFile, path) -> None:
    """Refuse, naming ``path``, a model file whose settings no config could hold, whose grid
    is not one lidcseg writes, or whose weights are not all finite tensors."""
    if not isinstance(saved.variant, str) or not isinstance(saved.models, dict):
        raise CheckpointError(f"{path}: its variant or models field is of the wrong type")
    if not isinstance(saved.seed, int) or not isinstance(saved.epoch, int):
        raise CheckpointError(f"{path}: its seed or epoch is not a whole number")
    missing = [k for k in ARCHITECTURE if k not in saved.models]
    extra = sorted(set(saved.models) - set(ARCHITECTURE) - {"variants", "run"})  # unread
    if missing or extra:
        raise CheckpointError(f"{path}: its models settings lack {missing} or have unknown {extra}")
    checks = [(f"models.{k}", saved.models[k], f"models.{k}") for k in ARCHITECTURE]
    checks += [("image_scale", saved.image_scale, "train.image_scale")]
    checks += [("seed", [saved.seed], "train.seeds")]
    checks += _grid_checks(saved.grid, path)
    for field, value, key in checks:
        try:
            config.check_value(key, value)
        except ConfigError as error:
            raise CheckpointError(
                f"{path}: {field} {value!r} is not one lidcseg writes ({error})"
            ) from None
    _check_weights(saved.state_dict, path)


def _grid_checks(grid, path) -> list[tuple[str, object, str]]:
    """(field, value, config key) of the grid; none for a grid without values (predict names
    that one: the packed data it came from lacked them)."""
    names = ("spacing_mm", "image_shape", "window")
    if not isinstance(grid, dict) or set(grid) != set(names):
        raise CheckpointError(f"{path}: its grid is not a mapping of {', '.join(names)}")
    if any(grid[k] is None for k in names):
        return []
    window = grid["window"]
    if not isinstance(window, list | tuple) or len(window) != 2:
        raise CheckpointError(f"{path}: grid window {window!r} is not [centre, width]")
    return [
        ("grid spacing_mm", grid["spacing_mm"], "resample.spacing_mm"),
        ("grid image_shape", grid["image_shape"], "resample.image_size"),
        ("grid window centre", window[0], "extract.window_centre"),
        ("grid window width", window[1], "extract.window_width"),
    ]


def _check_weights(state: dict, path) -> None:
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: its weights are not a mapping of names to tensors")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{path}: weight {name} holds {bad} of {tensor.numel()} values that are not "
                "finite (NaN or inf): the training diverged or the file was damaged"
            )


def _variant(saved: ModelFile, path) -> Variant:
    """The saved slots as a Variant of known blocks, named ``path`` if not."""
    slots = saved.slots
    known = {f.name for f in fields(Slots)}
    if not isinstance(slots, dict) or not set(slots) - {"name"} <= known:
        raise CheckpointError(f"{path}: slots {slots!r} are not {sorted(known)}")
    kinds = {"aspp": bool, "attention": str, "reverse": bool, "boundary": bool}
    if not all(isinstance(slots[k], kinds[k]) for k in known & set(slots)):
        raise CheckpointError(f"{path}: slots {slots!r} are not of their types")
    try:
        only = {k: v for k, v in slots.items() if k != "name"}
        return variants_from_config({saved.variant: only})[saved.variant]
    except ConfigError as error:
        raise CheckpointError(f"{path}: {error}") from None


def _check_fit(expected: dict, saved: dict, variant: Variant, path) -> None:
    """Every weight the network has, of its shape, and no other: else the file's weights
    belong to another network than its slots and settings describe."""
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    reshaped = [
        f"{k} {tuple(saved[k].shape)} for {tuple(v.shape)}"
        for k, v in expected.items()
        if k in saved and saved[k].shape != v.shape
    ]
    if missing or unexpected or reshaped:
        parts = [
            f"{len(items)} {what} (first: {items[0]})"
            for what, items in (
                ("missing", missing),
                ("unknown", unexpected),
                ("of another shape", reshaped),
            )
            if items
        ]
        raise CheckpointError(
            f"{path}: its weights do not fit the network its slots ({variant.slots()}) and "
            f"models settings build: {'; '.join(parts)}"
        )
