"""dina: Discrete Native Autoregression (a LongCat-Next implementation)."""

__version__ = "0.1.0"
