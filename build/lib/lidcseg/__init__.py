"""lidcseg: LIDC-IDRI lung-nodule segmentation, from the archive to the paper's tables."""

__version__ = "0.1.0"
