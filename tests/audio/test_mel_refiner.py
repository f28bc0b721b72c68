import pytest
import torch

from dina.audio.refiner import MelRefiner, MelRefinerConfig
from dina.errors import BadArgument, BadConfig

SMALL = MelRefinerConfig(n_mels=8, cond_dim=12, channels=16, dilations=(1, 2), time_dim=16, groups=4, steps=4)


def _inputs(b: int = 2, tokens: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 8, 8 * tokens, generator=g), torch.randn(b, tokens, 12, generator=g)


def test_untrained_refiner_returns_the_coarse_mel():
    model = MelRefiner(SMALL)
    coarse, emb = _inputs()
    torch.testing.assert_close(model.refine(coarse, emb, temperature=0.0), coarse)
    torch.testing.assert_close(
        model.refine(coarse, emb, generator=torch.Generator().manual_seed(1)), coarse, atol=1e-5, rtol=0
    )


def test_refiner_is_causal_in_time():
    torch.manual_seed(0)
    model = MelRefiner(SMALL)
    torch.nn.init.normal_(model.out.weight, std=0.1)  # the zero head would hide everything
    coarse, emb = _inputs(1)
    later = coarse.clone()
    later[..., 20:] += 1.0
    t = torch.tensor([0.3])
    x = torch.randn_like(coarse)
    a, b = model.predict_x1(x, coarse, emb, t), model.predict_x1(x, later, emb, t)
    torch.testing.assert_close(a[..., :20], b[..., :20])
    assert (a[..., 20:] - b[..., 20:]).abs().max() > 1e-4


def test_seeded_sampling_repeats():
    torch.manual_seed(0)
    model = MelRefiner(SMALL)
    torch.nn.init.normal_(model.out.weight, std=0.1)
    coarse, emb = _inputs()
    a = model.refine(coarse, emb, generator=torch.Generator().manual_seed(3))
    b = model.refine(coarse, emb, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, coarse)


def test_short_training_sharpens_a_smoothed_mel():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    target = torch.sign(torch.randn(8, 8, 32, generator=g)).repeat_interleave(2, -1)[..., :32] * 0.8
    coarse = torch.nn.functional.avg_pool1d(target, 5, stride=1, padding=2, count_include_pad=False)
    emb = torch.zeros(8, 4, 12)
    model = MelRefiner(SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(150):
        loss = model.loss(target, coarse, emb, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    refined = model.refine(coarse, emb, temperature=0.0)
    assert (refined - target).pow(2).mean() < (coarse - target).pow(2).mean()


def test_bad_input():
    model = MelRefiner(SMALL)
    coarse, emb = _inputs()
    with pytest.raises(BadArgument, match="coarse mel"):
        model.refine(coarse[:, :7], emb)
    with pytest.raises(BadArgument, match="code embeddings"):
        model.refine(coarse, emb[:, :3])
    with pytest.raises(BadArgument, match="differ"):
        model.loss(coarse[..., :16], coarse, emb)
    with pytest.raises(BadConfig):
        MelRefinerConfig(channels=10, groups=4)
