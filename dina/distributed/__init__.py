"""Parallelism applied from outside the models (STYLE §5): process-group hooks installed on built modules."""

from dina.distributed.codebook_sync import DistributedCodebookSync, apply_codebook_sync

__all__ = ["DistributedCodebookSync", "apply_codebook_sync"]
