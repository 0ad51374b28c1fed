"""The packed cohort handed to nnU-Net in its raw format, and external predictions scored back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lidcseg.cli import main
from lidcseg.data.dataset.nnunet import case_id
from lidcseg.data.dataset.packed import PackedSplit
from tests.support.packed import write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("nnunet")
    packed = write_packed(root / "data")
    assert main(["export-nnunet", str(packed), str(root / "raw"), "--dataset-id", "501"]) == 0
    return packed, root / "raw" / "Dataset501_LIDC"


def test_the_layout_is_nnunets_2d_format(exported):
    packed, folder = exported
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["file_ending"] == ".png" and meta["channel_names"] == {"0": "lung window"}
    assert meta["labels"] == {"background": 0, "nodule": 1}
    splits = {s: PackedSplit(packed, s) for s in ("train", "val", "test")}
    assert meta["numTraining"] == len(splits["train"]) + len(splits["val"])
    for split, suffix in (("train", "Tr"), ("val", "Tr"), ("test", "Ts")):
        for index, row in enumerate(splits[split].rows):
            image = np.asarray(Image.open(folder / f"images{suffix}" / f"{case_id(row)}_0000.png"))
            label = np.asarray(Image.open(folder / f"labels{suffix}" / f"{case_id(row)}.png"))
            assert (
                image.dtype == np.uint16 and label.dtype == np.uint8 and image.shape == label.shape
            )
            np.testing.assert_allclose(
                image / 65535, np.asarray(splits[split].images[index], np.float32), atol=1e-4
            )
            assert np.array_equal(label, np.asarray(splits[split].masks[index]) > 0)
    assert len(list((folder / "imagesTr").iterdir())) == meta["numTraining"]  # one channel per case


def test_splits_final_holds_our_split_and_no_patient_twice(exported):
    packed, folder = exported
    (fold,) = json.loads((folder / "splits_final.json").read_text())
    patients = {name: {case.rsplit("_", 1)[0] for case in fold[name]} for name in ("train", "val")}
    assert patients["train"] == {r["patient_id"] for r in PackedSplit(packed, "train").rows}
    assert patients["val"] == {r["patient_id"] for r in PackedSplit(packed, "val").rows}
    assert not patients["train"] & patients["val"]
    test_cases = {p.name.removesuffix("_0000.png") for p in (folder / "imagesTs").iterdir()}
    assert not {c.rsplit("_", 1)[0] for c in test_cases} & (patients["train"] | patients["val"])


@pytest.mark.parametrize("kind, dsc", [("truth", 1.0), ("empty", 0.0)])
def test_external_predictions_are_scored_like_ours(exported, tmp_path, kind, dsc):
    packed, folder = exported
    predictions = tmp_path / "nnunet_2d"
    predictions.mkdir()
    for label in (folder / "labelsTs").iterdir():
        truth = np.asarray(Image.open(label))
        Image.fromarray(truth if kind == "truth" else np.zeros_like(truth)).save(
            predictions / label.name
        )
    out = tmp_path / "metrics" / "nnunet.json"
    assert (
        main(
            [
                "evaluate",
                str(predictions),
                str(packed),
                str(out),
                "--nodules",
                str(packed.parent / "nodules.csv"),
                "--name",
                "nnU-Net 2d",
                "--settings",
                CONFIG,
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["variant"] == "nnU-Net 2d" and result["pooled"]["dsc"] == dsc
    assert result["test"]["slices"] == len(PackedSplit(packed, "test"))


def test_a_missing_or_misshapen_prediction_is_named(exported, tmp_path, capsys):
    packed, folder = exported
    predictions = tmp_path / "partial"
    predictions.mkdir()
    labels = sorted((folder / "labelsTs").iterdir())
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(predictions / labels[0].name)
    args = [
        str(packed),
        str(tmp_path / "out.json"),
        "--nodules",
        str(packed.parent / "nodules.csv"),
        "--settings",
        CONFIG,
    ]
    assert main(["evaluate", str(predictions), *args]) == 2
    assert f"{predictions / labels[0].name}: (5, 5) pixels" in capsys.readouterr().err
    (predictions / labels[0].name).unlink()
    assert main(["evaluate", str(predictions), *args]) == 2
    assert labels[0].name in capsys.readouterr().err and not (tmp_path / "out.json").exists()


def test_nnunets_own_dataset_check_passes(exported):
    """Where nnunetv2 is installed (it installs beside our pins without another torch:
    `pip install nnunetv2 -c constraints.txt` kept torch 2.13.0+cpu here), its own check."""
    pytest.importorskip(
        "nnunetv2", reason="nnunetv2 is not installed here (not one of our dependencies)"
    )
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(exported[1]), num_processes=1)  # raises on any defect
