"""Checkpoints: exact round trip (weights, optimizer, RNG), atomic replacement, clear errors."""

import pytest
import torch

from dina.errors import BadCheckpoint
from dina.training.checkpoint import load_checkpoint, save_checkpoint


def _setup(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, optim


def _train(model, optim, steps):
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 4)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    return losses


def test_resume_continues_the_exact_same_curve(tmp_path):
    model, optim = _setup(0)
    full = _train(model, optim, 10)

    model, optim = _setup(0)
    first = _train(model, optim, 4)
    save_checkpoint(tmp_path / "ckpt", {"net": model}, {"adam": optim}, step=4, extra={"stage": "x"})
    model2, optim2 = _setup(123)  # different init: everything must come from the checkpoint
    info = load_checkpoint(tmp_path / "ckpt", {"net": model2}, {"adam": optim2})
    assert info == {"step": 4, "extra": {"stage": "x"}}
    assert first + _train(model2, optim2, 6) == full


def test_overwrite_is_atomic_and_leaves_no_temporaries(tmp_path):
    model, _ = _setup(0)
    save_checkpoint(tmp_path / "ckpt", {"net": model}, step=1)
    save_checkpoint(tmp_path / "ckpt", {"net": model}, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert load_checkpoint(tmp_path / "ckpt", {"net": model})["step"] == 2


def test_mismatches_and_truncation_are_named(tmp_path):
    model, _ = _setup(0)
    save_checkpoint(tmp_path / "ckpt", {"net": model}, step=1)
    wider = torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.ReLU(), torch.nn.Linear(9, 1))
    with pytest.raises(BadCheckpoint, match=r"'0.weight' has shape \(8, 4\), the model expects \(9, 4\)"):
        load_checkpoint(tmp_path / "ckpt", {"net": wider})
    deeper = torch.nn.Sequential(*model, torch.nn.Linear(1, 1))
    with pytest.raises(BadCheckpoint, match=r"missing tensor '3\.weight'"):
        load_checkpoint(tmp_path / "ckpt", {"net": deeper})
    path = tmp_path / "ckpt" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BadCheckpoint, match="truncated"):
        load_checkpoint(tmp_path / "ckpt", {"net": model})
    with pytest.raises(BadCheckpoint, match="missing or corrupt"):
        load_checkpoint(tmp_path / "nowhere", {"net": model})
