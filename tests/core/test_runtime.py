"""The execution record saved beside a job's results: the device by name, then only the
settings the job has."""

from __future__ import annotations

import torch

from lidcseg.core.runtime import execution_record


def test_training_record_names_every_setting():
    record = execution_record(
        torch.device("cpu"),
        threads=2,
        workers=1,
        compile=False,
        deterministic=True,
        channels_last=False,
        amp="none",
    )
    assert record == {
        "device": "cpu",
        "threads": 2,
        "workers": 1,
        "compile": False,
        "deterministic": True,
        "channels_last": False,
        "amp": "none",
    }


def test_evaluation_record_has_its_batch_size_and_no_training_settings():
    record = execution_record("cpu", threads=4, batch_size=16)
    assert record == {"device": "cpu", "threads": 4, "batch_size": 16}
