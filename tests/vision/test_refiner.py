"""The flow refiner: shapes at odd aspect ratios, seeded sampling, a zero-head identity, and learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dina.errors import BadArgument, BadConfig
from dina.flow import CondOTPath
from dina.vision.refiner import FlowRefiner, RefinerBatch, RefinerConfig, random_aligned_crop

SMALL = RefinerConfig(channels=8, groups=4, cond_dim=4, time_dim=16, steps=4, noise_scale=0.2)


def _inputs(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    decoded = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    cond = torch.randn(b, SMALL.cond_dim, h // 28, w // 28, generator=g)
    return decoded, cond


def _trained_a_little(model: FlowRefiner) -> FlowRefiner:
    with torch.no_grad():  # a nonzero head, so outputs depend on the network and not only the noise
        model.out_conv.weight.normal_(0, 0.05)
    return model


@pytest.mark.parametrize(("h", "w"), [(56, 448), (448, 56), (84, 140)])
def test_output_shapes_at_odd_aspect_ratios(h: int, w: int):
    torch.manual_seed(0)
    model = _trained_a_little(FlowRefiner(SMALL))
    decoded, cond = _inputs(2, h, w)
    out = model.refine(decoded, cond)
    assert out.shape == (2, 3, h, w)
    assert out.min() >= -1 and out.max() <= 1
    v = model(decoded, decoded, cond, torch.rand(2))
    assert v.shape == (2, 3, h, w)


def test_refine_is_seeded():
    torch.manual_seed(0)
    model = _trained_a_little(FlowRefiner(SMALL))
    decoded, cond = _inputs(1, 56, 112)
    a = model.refine(decoded, cond, generator=torch.Generator().manual_seed(3))
    b = model.refine(decoded, cond, generator=torch.Generator().manual_seed(3))
    c = model.refine(decoded, cond, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zero_head_returns_the_decoder_output():
    model = FlowRefiner(SMALL)  # the output conv starts at zero: x1_hat = 0, "no residual"
    decoded, cond = _inputs(2, 56, 84)
    assert torch.equal(model.refine(decoded, cond, temperature=0.0), decoded)
    # The flow removes its start noise whatever the temperature and step count (within the floor).
    for steps in (1, 4, 20):
        out = model.refine(decoded, cond, steps=steps, temperature=3.0, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(out, decoded, atol=1e-5)


def test_velocity_is_the_conditional_target_for_a_perfect_x1_prediction():
    model = FlowRefiner(SMALL)
    decoded, cond = _inputs(3, 56, 56)
    x0, x1 = torch.randn_like(decoded), torch.randn_like(decoded)
    t = torch.tensor([0.0, 0.5, 0.9])
    x_t = CondOTPath().sample(x0, x1, t).x_t
    model.predict_x1 = lambda *args: x1  # type: ignore[method-assign]
    assert torch.allclose(model(x_t, decoded, cond, t), x1 - x0, atol=1e-5)


def test_loss_decreases_on_a_deblurring_task():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    sharp = torch.sign(torch.randn(4, 3, 7, 7, generator=g)).repeat_interleave(8, -1).repeat_interleave(8, -2) * 0.8
    blurred = F.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
    cond = torch.zeros(4, SMALL.cond_dim, 2, 2)
    model = FlowRefiner(SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model.loss(sharp, blurred, cond, generator=torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_loss_is_seeded():
    model = FlowRefiner(SMALL)
    decoded, cond = _inputs(2, 56, 56)
    target = decoded.flip(-1)
    a = model.loss(target, decoded, cond, generator=torch.Generator().manual_seed(5))
    b = model.loss(target, decoded, cond, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_aligned_crop_keeps_codes_with_their_pixels():
    decoded, cond = _inputs(1, 112, 168)
    batch = RefinerBatch(target_B3HW=decoded.clone(), decoded_B3HW=decoded, cond_BDhw=cond)
    crop = random_aligned_crop(batch, crop_tokens=2, patch_px=28, generator=torch.Generator().manual_seed(0))
    assert crop.decoded_B3HW.shape == (1, 3, 56, 56) and crop.cond_BDhw.shape == (1, 4, 2, 2)
    # Find where the crop came from and check the codes came from the same token cells.
    for top in range(3):
        for left in range(5):
            if torch.equal(decoded[..., top * 28 : top * 28 + 56, left * 28 : left * 28 + 56], crop.decoded_B3HW):
                assert torch.equal(cond[..., top : top + 2, left : left + 2], crop.cond_BDhw)
                return
    raise AssertionError("crop is not aligned to the token grid")


def test_bad_inputs_and_configs_are_rejected():
    model = FlowRefiner(SMALL)
    decoded, cond = _inputs(1, 56, 56)
    with pytest.raises(BadArgument):
        model.refine(decoded, cond[..., :1])  # code grid does not match the image
    with pytest.raises(BadArgument):
        model.refine(decoded[..., :50], cond)  # not a multiple of the token size
    with pytest.raises(BadConfig):
        RefinerConfig(channels=10, groups=4)
    with pytest.raises(BadConfig):
        RefinerConfig(channel_mults=(1, 2, 2, 2))  # 28 px tokens do not halve three times
