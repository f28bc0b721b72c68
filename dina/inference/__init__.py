"""The inference engine: KV cache, samplers, generate() (report Sec. 2.5.2-2.5.3; release §2, §6, §8)."""
