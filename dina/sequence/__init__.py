"""Samples as typed segments, and packing them into fixed token budgets."""

from dina.sequence.packing import PackedBatch, PackingStats, pack_samples, packing_stats
from dina.sequence.segments import AudioSegment, ImageSegment, Sample, TextSegment

__all__ = [
    "AudioSegment",
    "ImageSegment",
    "PackedBatch",
    "PackingStats",
    "Sample",
    "TextSegment",
    "pack_samples",
    "packing_stats",
]
