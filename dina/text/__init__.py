"""Text: the byte-level BPE and the special tokens of the unified vocabulary."""
