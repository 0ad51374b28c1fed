"""An exponential moving average of a model's weights, the model that is validated and kept.

Measured on the demo (docs/training.md, "Decision log"): on 96 x 96 crops of ~100 slices, the
validation DSC of the raw weights jumped between epochs (0.37, 0.06, 0.17, 0.58 for one
``rbcbam`` run), so which epoch was kept, and the test DSC, was mostly chance. Averaging
the weights of the last few hundred steps (Polyak & Juditsky, SIAM J. Control Optim. 1992;
the EMA of TensorFlow's ``ExponentialMovingAverage`` and timm's ``ModelEmaV2``) removes
that step-to-step noise. Batch-norm statistics are averaged the same way, so the average is
a model in its own right. The decay starts low, ``min(decay, (1 + n) / (10 + n))`` after n
updates (TensorFlow's ``num_updates``), so the first steps' random weights fade quickly.
``decay = 0`` turns it off: the average is then the trained model itself.
"""

from __future__ import annotations

import copy

import torch

from lidcseg.core.model_file import cpu_state


class WeightAverage:
    """``model`` (an average of the trained model's weights) and ``update`` after each step."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).requires_grad_(False) if decay else model
        # The tensors of both, paired once: a state dict shares their storage, and loading a
        # checkpoint copies into them, so the lists stay valid for the whole job. Floating
        # tensors (weights, batch-norm statistics) are averaged; the rest (batch norm's step
        # counters) copied.
        average, current = (self.model.state_dict(), model.state_dict()) if decay else ({}, {})
        floating = [k for k, v in average.items() if v.is_floating_point()]
        counters = [k for k, v in average.items() if not v.is_floating_point()]
        self.averaged = [average[k] for k in floating], [current[k] for k in floating]
        self.copied = [average[k] for k in counters], [current[k] for k in counters]

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average toward the trained model's current weights: one
        multi-tensor lerp over all of them (a loop of one small kernel per tensor cost
        hundreds of launches per step on a GPU)."""
        if not self.decay:
            return
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(*self.averaged, 1 - decay)
        torch._foreach_copy_(*self.copied)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"updates": self.updates, "model": cpu_state(self.model)} if self.decay else {}

    def load_state_dict(self, state: dict) -> None:
        if self.decay:
            self.model.load_state_dict(state["model"])
            self.updates = state["updates"]
