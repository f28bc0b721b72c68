"""Audio tokenizer and de-tokenizer (report Sec. 2.3)."""
