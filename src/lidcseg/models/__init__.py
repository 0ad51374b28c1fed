"""The model zoo (docs/paper.md, "Model"): one U-Net whose skip connections are built from slots."""
