"""Tests run on one thread: with two, a busy second core stalls every OpenMP barrier (10x slower)."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def crash_in_stage(monkeypatch):
    """`arm(stage, step)` makes training runs raise KeyboardInterrupt at that step of that stage
    (as a user's Ctrl-C would); the returned `disarm()` restores the real `run_stage`."""
    import dina.training.loop as loop

    real_run_stage = loop.run_stage

    def arm(stage: str, step: int):
        def crashing(name, **kwargs):
            if name == stage:
                inner = kwargs["loss_fn"]

                def loss_fn(s):
                    if s == step:
                        raise KeyboardInterrupt
                    return inner(s)

                kwargs = {**kwargs, "loss_fn": loss_fn}
            return real_run_stage(name, **kwargs)

        monkeypatch.setattr(loop, "run_stage", crashing)
        return lambda: monkeypatch.setattr(loop, "run_stage", real_run_stage)

    return arm
