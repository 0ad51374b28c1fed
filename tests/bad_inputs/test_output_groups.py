"""Files that belong together stay together: a group of outputs commits all or nothing (a
kill between two renames included), a folder output replaces the old one, one run at a time
writes a folder, a full disk is named, every output gets one mode, and inputs that describe
each other (images and labels, a metrics file per seed) are refused when they do not.

Each case runs the real command and asserts exit 2, one line on stderr naming the file,
and nothing left half-written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal

import numpy as np
import pytest
import torch

from lidcseg import staging
from lidcseg.cli import main
from lidcseg.errors import LidcsegError
from lidcseg.io import read_json, read_rows, sidecar, write_json, write_rows
from lidcseg.training.checkpoints import Checkpoint
from tests.support.metrics_files import metrics_file
from tests.support.packed import tiny_settings, write_packed
from tests.support.paths import REPO

CONFIG = str(REPO / "config.yaml")


def _one_line(capsys, *words):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err, err
    for word in words:
        assert word in err, err
    return err


def _hidden(root):
    """What a run must not leave behind: temporary files and folders, marks, locks."""
    return sorted(p.name for p in root.rglob(".*"))


def _dying_after(monkeypatch, renames: int):
    """os.replace as a job killed after ``renames`` renames: the next one never happens."""
    real, done = os.replace, []

    def replace(src, dst):
        if len(done) == renames:
            raise KeyboardInterrupt("killed")  # nothing of the job runs after a kill
        done.append(dst)
        real(src, dst)

    monkeypatch.setattr(staging.os, "replace", replace)


# -- a group killed half-way ----------------------------------------------------------------


def test_a_group_killed_between_its_renames_is_refused_by_its_readers(
    series, tmp_path, monkeypatch, capsys
):
    folder, _, _ = series
    hu = tmp_path / "hu" / "LIDC-IDRI-9999.nii.gz"
    convert = ["convert", str(folder), str(hu), "--settings", CONFIG]
    resample = ["resample", str(hu), str(tmp_path / "out.nii.gz"), "--settings", CONFIG]
    _dying_after(monkeypatch, renames=1)
    with pytest.raises(KeyboardInterrupt):
        main(convert)
    monkeypatch.undo()
    # what the kill left: the volume without the real slice positions of its sidecar
    assert hu.exists() and not sidecar(hu).exists()
    assert main(resample) == 2
    _one_line(capsys, f"{hu}: its output group was cut short", "rerun")
    assert not (tmp_path / "out.nii.gz").exists()
    assert main(convert) == 0 and main(resample) == 0  # a rerun completes the group
    assert not [name for name in _hidden(tmp_path) if name.startswith(".incomplete-")]


def test_a_staged_folder_killed_between_its_renames_is_refused_by_its_readers(
    tmp_path, monkeypatch, capsys
):
    """split's split.csv and packed/ are one group: a kill after the first rename leaves the
    new split table beside the old packed arrays, which training must not take."""
    out = tmp_path / "dataset"
    with staging.staged_folder(out) as staged:
        write_json({"old": True}, staged / "packed" / "dataset.json")
        write_json({"old": True}, staged / "split.json")
    with pytest.raises(KeyboardInterrupt), staging.staged_folder(out) as staged:
        write_json({"new": True}, staged / "packed" / "dataset.json")
        write_json({"new": True}, staged / "split.json")
        # the commit: the old packed/ set aside, the new one in, then the kill
        _dying_after(monkeypatch, renames=2)
    monkeypatch.undo()
    assert json.loads((out / "packed" / "dataset.json").read_text()) == {"new": True}
    assert json.loads((out / "split.json").read_text()) == {"old": True}
    for path in (out / "packed" / "dataset.json", out / "split.json"):
        with pytest.raises(LidcsegError, match="its output group was cut short"):
            read_json(path)


# -- folder outputs: replaced, one run at a time ---------------------------------------------


def test_a_second_export_replaces_the_first_never_merges(tmp_path):
    out = tmp_path / "nnunet_raw"
    big = write_packed(tmp_path / "big", per_patient=4)
    small = write_packed(tmp_path / "small", per_patient=1)
    assert main(["export-nnunet", str(big), str(out)]) == 0
    assert main(["export-nnunet", str(small), str(out)]) == 0
    dataset = out / "Dataset501_LIDC"
    n_train = read_json(dataset / "dataset.json")["numTraining"]
    assert n_train == 4  # four train and val patients, one slice each
    assert len(list((dataset / "imagesTr").iterdir())) == n_train
    assert len(list((dataset / "labelsTr").iterdir())) == n_train
    assert len(list((dataset / "imagesTs").iterdir())) == len(read_rows(small / "test.csv"))
    assert _hidden(out) == []  # no staging, mark or lock left


def test_a_second_export_on_the_same_folder_at_once_is_refused_naming_the_lock(tmp_path, capsys):
    packed = write_packed(tmp_path / "data")
    out = tmp_path / "nnunet_raw"
    out.mkdir()
    other = out / ".tmp-Dataset501_LIDC-other"  # the first run's staging, half-way through
    other.mkdir()
    (other / "dataset.json").write_text("{}")
    lock = out / ".Dataset501_LIDC.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what the first run holds while it writes
        assert main(["export-nnunet", str(packed), str(out)]) == 2
    _one_line(capsys, f"{lock}: another run is writing", "Dataset501_LIDC")
    assert (other / "dataset.json").exists()  # the first run's work is untouched
    assert not (out / "Dataset501_LIDC").exists()
    assert main(["export-nnunet", str(packed), str(out)]) == 0  # once it is released


# -- a full disk -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return write_packed(tmp_path_factory.mktemp("packed"))


def _train(packed, out, epochs):
    settings = json.dumps(tiny_settings(epochs=epochs))
    argv = ["train", str(packed), str(out), "--variant", "unet", "--seed", "7"]
    return main([*argv, "--settings", settings])


def test_a_full_disk_while_training_saves_names_the_checkpoint_and_keeps_the_last(
    packed, tmp_path, monkeypatch, capsys
):
    real, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) > 1:  # the second epoch's checkpoint meets a full disk
            f.write(b"part of it")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "model"
    assert _train(packed, out, epochs=2) == 2
    _one_line(capsys, f"{out / 'checkpoint.pt'}: No space left on device")
    monkeypatch.undo()
    kept = Checkpoint.load(out / "checkpoint.pt")
    assert kept.state["epoch"] == 1  # the first epoch's checkpoint survives, whole
    assert not (out / "model.pt").exists() and _hidden(out) == []


def test_a_full_disk_while_writing_any_output_names_it_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    write_json({"old": True}, target)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pathlib.Path.write_text", full)
    with pytest.raises(LidcsegError, match=f"{target}: No space left on device"):
        write_json({"new": True}, target)
    monkeypatch.undo()
    assert read_json(target) == {"old": True} and _hidden(tmp_path) == []


# -- one mode for every output -----------------------------------------------------------------


def test_the_model_file_has_the_mode_of_every_other_output(packed, tmp_path):
    umask = os.umask(0o022)
    try:
        assert _train(packed, tmp_path / "model", epochs=1) == 0
    finally:
        os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "model").iterdir()}
    assert modes == dict.fromkeys(("model.pt", "log.csv", "train.json"), 0o644)


# -- inputs that describe each other -----------------------------------------------------------


def test_labels_of_another_size_than_their_images_are_refused_naming_the_file(tmp_path, capsys):
    packed = write_packed(tmp_path / "data")
    masks = packed / "test.masks.npy"
    n = len(np.load(masks))
    np.save(masks, np.zeros((n, 32, 32), np.uint8))  # the images are 64 x 64
    out = tmp_path / "nnunet_raw"
    assert main(["export-nnunet", str(packed), str(out)]) == 2
    _one_line(capsys, f"{masks}: masks ({n}, 32, 32) for images ({n}, 64, 64)")
    assert not out.exists()


@pytest.mark.parametrize("how", ["the same file twice", "a copy under another name"])
def test_one_seed_counted_twice_is_refused_naming_the_file(tmp_path, capsys, how):
    first = metrics_file(tmp_path, "unet", 7, dsc=0.7)
    second = first
    if how == "a copy under another name":
        second = first.with_name("seed8.json")
        shutil.copy(first, second)
    out = tmp_path / "summary.csv"
    assert main(["summarize", str(out), str(first), str(second)]) == 2
    words = ["given twice"] if second == first else [f"as {first} is"]
    _one_line(capsys, f"{second}: metrics of unet seed 7", *words)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_a_fifo_among_the_predictions_is_refused_not_waited_on(tmp_path, capsys):
    packed = write_packed(tmp_path / "data")
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    rows = read_rows(packed / "test.csv")
    fifo = predictions / f"{rows[0]['patient_id']}_{int(rows[0]['slice']):04d}.png"
    os.mkfifo(fifo)  # opening it would wait for a writer for ever

    def stuck(*_):
        raise TimeoutError("evaluate waited on the FIFO")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(30)
    try:
        argv = ["evaluate", str(predictions), str(packed), str(tmp_path / "m.json")]
        nodules = ["--nodules", str(packed.parent / "nodules.csv"), "--settings", CONFIG]
        assert main([*argv, *nodules]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    _one_line(capsys, f"{fifo}: not a regular file")
    assert not (tmp_path / "m.json").exists()


# -- split's rows against the arrays they describe ---------------------------------------------

PATIENTS = [f"LIDC-IDRI-000{k}" for k in range(1, 5)]


def _slices(root, size=16, n=2):
    """extract's outputs of four patients: n slices each, nodule 1 in every slice."""
    from lidcseg.data.dataset.slices import save_slices

    for k, patient in enumerate(PATIENTS):
        masks = np.zeros((n, size, size), np.uint8)
        masks[:, 4:8, 4:8] = 1
        rows = [
            {"patient_id": patient, "slice": s, "nodules": "1", "diameter_mm": 4.0 + k}
            for s in range(n)
        ]
        images = np.full((n, size, size), 0.5, np.float16)
        npz, csv = root / f"{patient}.npz", root / f"{patient}.csv"
        save_slices(images, masks, rows, npz, csv, spacing_mm=(0.7, 0.7, 2.0), window=(-600, 1500))
    return root


def _break(root, how):
    """One patient's rows or arrays made not to describe each other; returns the named file."""
    from lidcseg.data.dataset.slices import SLICE_FIELDS

    table, arrays = root / f"{PATIENTS[1]}.csv", root / f"{PATIENTS[1]}.npz"
    rows = read_rows(table)
    if how == "an extra row":
        rows.append({**rows[-1], "slice": "2"})
    elif how == "a row of another patient":
        rows[1]["patient_id"] = PATIENTS[0]
    elif how == "a nodule the mask does not hold":
        rows[0]["nodules"] = "1;7"
    elif how == "slices of another size":
        with np.load(arrays) as data:
            parts = dict(data)
        parts.update(images=np.zeros((2, 8, 8), np.float16), masks=np.ones((2, 8, 8), np.uint8))
        np.savez(arrays, **parts)
        return arrays
    write_rows(rows, table, SLICE_FIELDS)
    return table


@pytest.mark.parametrize(
    "how",
    [
        "an extra row",
        "a row of another patient",
        "a nodule the mask does not hold",
        "slices of another size",
    ],
)
def test_split_refuses_rows_that_do_not_describe_their_arrays(tmp_path, capsys, how):
    slices = _slices(tmp_path / "slices")
    out = tmp_path / "dataset"
    argv = ["split", str(slices), str(out), "--patients", *PATIENTS, "--settings", CONFIG]
    assert main(argv) == 0  # the valid cohort splits
    shutil.rmtree(out)
    named = _break(slices, how)
    assert main(argv) == 2
    _one_line(capsys, f"{named}")
    assert not out.exists() or not any(out.iterdir())
    assert _hidden(tmp_path) == []  # no staging, mark or lock left
