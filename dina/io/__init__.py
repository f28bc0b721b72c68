"""Reading user files safely and writing dina's files atomically."""
