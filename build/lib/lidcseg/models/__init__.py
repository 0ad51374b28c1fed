"""The model zoo (SPEC.md, Model): one U-Net whose skip connections are built from slots."""
