"""What several stages share and no stage owns.

Training, inference and evaluation each import from here and never from one another:
device and runtime (``runtime``), slice scaling (``scaling``), whole-slice logits
(``logits``), the counting metrics (``metrics``), nodule size groups (``sizes``), and one
typed contract per file the stages hand each other, with its format version, ``save`` and
``load`` (``file_format``): the model file (``model_file``), the metrics file and the files
beside it (``metrics_file``), the readers' figures (``readers_file``) and a patient's
series.json (``series_manifest``). Nothing here imports a stage, the models or the data code.
"""
