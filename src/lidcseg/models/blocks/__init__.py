"""One block per file; importing this package registers all of them."""

from lidcseg.models.blocks import aspp, bam, boundary, cbam, gate, rbcbam, reverse, se  # noqa: F401
