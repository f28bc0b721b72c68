"""Residual vector quantization with EMA codebooks (report Sec. 2.2.3), shared by vision and audio."""

from dina.quantize.codebook import EMACodebook, nearest_codes
from dina.quantize.rvq import ResidualVQ, RVQConfig, RVQOutput, check_level_ids, code_usage
from dina.quantize.sync import CodebookSync, LocalCodebookSync

__all__ = [
    "CodebookSync",
    "EMACodebook",
    "LocalCodebookSync",
    "RVQConfig",
    "RVQOutput",
    "ResidualVQ",
    "check_level_ids",
    "code_usage",
    "nearest_codes",
]
