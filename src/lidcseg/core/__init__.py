"""What several stages share and no stage owns.

Training, inference and evaluation each import from here and never from one another:
device and runtime (``runtime``), slice scaling (``scaling``), whole-slice logits
(``logits``), the counting metrics (``metrics``), nodule size groups (``sizes``) and the
model file (``model_file``). Nothing here imports a stage, the models or the data code.
"""
