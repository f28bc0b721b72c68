"""Tests run on one thread: with two, a busy second core stalls every OpenMP barrier (10x slower)."""

import torch

torch.set_num_threads(1)
