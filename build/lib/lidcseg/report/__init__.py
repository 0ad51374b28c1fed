"""What the workflow renders at the end: the paper's tables and figure, and what goes past them."""
