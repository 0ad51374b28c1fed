"""Data stages: download or synthesize, DICOM to HU, resample, annotations, slices, split."""
