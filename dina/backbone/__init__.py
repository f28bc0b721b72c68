"""The modality-agnostic LongCat-Flash backbone (report Sec. 2.4): MoE with zero experts."""
