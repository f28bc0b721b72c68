"""The flow-matching loss is zero exactly for the true velocity and respects masks."""

from __future__ import annotations

import pytest
import torch

from dina.errors import BadArgument
from dina.flow import CondOTPath, flow_matching_loss


def test_true_velocity_has_zero_loss_and_others_do_not():
    s = CondOTPath().sample(torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8), torch.rand(4))
    assert flow_matching_loss(s.dx_t, s.dx_t) == 0
    assert flow_matching_loss(s.dx_t + 0.1, s.dx_t) == pytest.approx(0.01)


def test_mask_drops_padded_positions():
    target = torch.zeros(2, 4, 6)
    pred = torch.zeros(2, 4, 6)
    pred[:, :, 4:] = 100.0  # errors only in the padded frames
    mask = torch.zeros(2, 1, 6, dtype=torch.bool)
    mask[..., :4] = True
    assert flow_matching_loss(pred, target, mask_B=mask) == 0
    assert flow_matching_loss(pred, target) > 0
    assert flow_matching_loss(pred, target, mask_B=torch.zeros_like(mask)) == 0


def test_shape_mismatch_is_rejected():
    with pytest.raises(BadArgument):
        flow_matching_loss(torch.zeros(2, 3), torch.zeros(3, 2))
