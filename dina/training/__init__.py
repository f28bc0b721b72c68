"""Training infrastructure shared by the tokenizers and the model: checkpoints, metrics, schedules."""
