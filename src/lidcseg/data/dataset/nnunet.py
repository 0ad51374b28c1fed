"""The packed cohort in nnU-Net v2's raw format, and nnU-Net's predictions read back.

nnU-Net (Isensee et al., Nature Methods 2021) is the reference a new segmentation module is
measured against; this module hands it exactly our slices and our split, so its row in a
table is trained and scored on the same data as ours.

Layout (nnU-Net's documentation, dataset_format.md: 2-D data as PNG through its
NaturalImage2DIO; one channel per file, ``<case>_0000.png``; labels ``<case>.png``)::

    Dataset<NNN>_<name>/
        dataset.json              channel "lung window", labels background 0 / nodule 1
        imagesTr/<case>_0000.png  train + val slices (nnU-Net trains on both, split below)
        labelsTr/<case>.png
        imagesTs/<case>_0000.png  our test slices
        labelsTs/<case>.png
        splits_final.json         one fold: our train patients' cases / our val patients' cases

A case is one slice: ``<patient>_<slice:04d>``. Images are the packed lung-window values
[0, 1] as 16-bit PNG (x 65535: no precision lost from the float16 packing); the channel is
not called "CT", so nnU-Net z-scores it instead of applying its HU normalisation.
``splits_final.json`` belongs in ``nnUNet_preprocessed/Dataset<NNN>_<name>/`` (copy it
there after ``nnUNetv2_plan_and_preprocess``), where nnU-Net then uses it instead of its
own five random folds.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lidcseg.data.dataset.packed import PackedSplit
from lidcseg.errors import LidcsegError, safe_name
from lidcseg.io import input_file, staged_folder, write_json

CHANNEL = "lung window"


def case_id(row: dict, where: str = "a packed row") -> str:
    """The nnU-Net case of one packed slice row: it names files, so its patient id must be a
    safe name (errors.safe_name) and its slice a whole number; else refused naming ``where``."""
    patient = safe_name(row.get("patient_id"), f"{where}: patient_id")
    try:
        return f"{patient}_{int(row.get('slice')):04d}"
    except (TypeError, ValueError):
        raise LidcsegError(f"{where}: slice {row.get('slice')!r} is not a whole number") from None


def export_nnunet(
    packed_dir: str | os.PathLike, out_root: str | os.PathLike, dataset_id: int, name: str = "LIDC"
) -> Path:
    """Write ``out_root/Dataset<NNN>_<name>/``; returns that folder. Every name is checked
    before anything is written (the folder's and each case's: they come from an option and
    from the packed rows), and the folder's entries replace an earlier export's whole, so an
    old case never stays beside the new ones; one export at a time writes a folder."""
    if not 1 <= dataset_id <= 999:
        raise LidcsegError(
            f"--dataset-id {dataset_id}: nnU-Net's ids are 1-999 (500 and up for your own)"
        )
    folder = Path(out_root) / f"Dataset{dataset_id:03d}_{safe_name(name, '--name')}"
    splits = {split: PackedSplit(packed_dir, split) for split in ("train", "val", "test")}
    cases = {
        split: [
            case_id(row, f"{Path(packed_dir) / split}.csv, row {i + 1}")
            for i, row in enumerate(s.rows)
        ]
        for split, s in splits.items()
    }
    with staged_folder(folder) as staging:
        for split, s in splits.items():
            _write_cases(s, cases[split], staging, "Ts" if split == "test" else "Tr")
        write_json(
            {
                "channel_names": {"0": CHANNEL},
                "labels": {"background": 0, "nodule": 1},
                "numTraining": len(cases["train"]) + len(cases["val"]),
                "file_ending": ".png",
                "name": name,
                "description": "LIDC-IDRI nodule slices packed by lidcseg (lung window, "
                "512 x 512); splits_final.json holds lidcseg's train/val patients",
            },
            staging / "dataset.json",
        )
        write_json([{"train": cases["train"], "val": cases["val"]}], staging / "splits_final.json")
    return folder


def _write_cases(split: PackedSplit, cases: list[str], folder: Path, suffix: str) -> None:
    from PIL import Image

    for kind in ("images", "labels"):
        (folder / f"{kind}{suffix}").mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(cases):
        image = np.rint(np.asarray(split.images[index], np.float32) * 65535).astype(np.uint16)
        Image.fromarray(image).save(folder / f"images{suffix}" / f"{case}_0000.png")
        Image.fromarray((np.asarray(split.masks[index]) > 0).astype(np.uint8)).save(
            folder / f"labels{suffix}" / f"{case}.png"
        )


def read_prediction(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A predicted label PNG (nnU-Net's output, or anyone's: 0 background, > 0 nodule) as a
    boolean slice of ``shape``; a missing, unreadable or misshapen file is named, as is one
    that is not a regular file (a FIFO would block the read for ever: io.input_file). Its
    size is checked from the header before a pixel is decoded, and an image past PIL's
    decompression-bomb limit (Image.MAX_IMAGE_PIXELS, 89 million pixels) is refused in one
    line rather than warned about or raised as a traceback: a prediction is a 512 x 512 slice."""
    from PIL import Image, UnidentifiedImageError

    input_file(path)
    try:
        with warnings.catch_warnings():  # past PIL's warning limit is past ours too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.size != (shape[1], shape[0]):  # the header's size, before decoding
                    raise LidcsegError(
                        f"{path}: {(image.height, image.width)} pixels, the test slice has "
                        f"{tuple(shape)}"
                    )
                labels = np.asarray(image)
    except FileNotFoundError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise LidcsegError(
            f"{path}: refused, past PIL's decompression-bomb limit ({error})"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise LidcsegError(
            f"{path}: not a readable label image ({type(error).__name__}: {error})"
        ) from None
    if labels.shape != tuple(shape):
        raise LidcsegError(f"{path}: {labels.shape} pixels, the test slice has {tuple(shape)}")
    return labels > 0
