"""Output heads: the DepthTransformer that writes all RVQ levels of a position (report Sec. 2.5.2)."""
