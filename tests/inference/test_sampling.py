"""Samplers: greedy is argmax, filters never leave their support, frequencies match the
distribution, the repetition penalty and CFG follow their formulas, bad input is refused."""

from __future__ import annotations

import math
from dataclasses import astuple

import pytest
import torch

from dina.errors import BadArgument, BadCodes
from dina.inference.sampling import (
    AUDIO_DEFAULT,
    GREEDY,
    IMAGE_DEFAULT,
    TEXT_DEFAULT,
    SamplingConfig,
    apply_repetition_penalty,
    cfg_logits,
    sample,
)

N = 20_000  # draws for the distribution tests: frequency std <= 0.0036


def _rows(probs: list[float], n: int = N) -> torch.Tensor:
    """n identical rows of logits whose softmax is `probs`."""
    return torch.tensor(probs).log().expand(n, -1)


def _freqs(ids: torch.Tensor, V: int) -> torch.Tensor:
    return torch.bincount(ids, minlength=V).double() / ids.numel()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_output_is_int64_per_row_for_any_float_dtype():
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        ids = sample(torch.randn(5, 11, generator=_gen(0)).to(dtype), SamplingConfig(), _gen(1))
        assert ids.shape == (5,) and ids.dtype == torch.int64


def test_greedy_is_argmax_and_ignores_the_generator():
    logits = torch.randn(8, 50, generator=_gen(0))
    expected = logits.argmax(dim=-1)
    assert torch.equal(sample(logits, GREEDY), expected)
    assert torch.equal(sample(logits, GREEDY, _gen(1)), expected)
    assert torch.equal(sample(logits, GREEDY, _gen(2)), expected)


def test_same_seed_same_samples_different_seeds_differ():
    logits = torch.zeros(1000, 10)
    a, b, c = (sample(logits, SamplingConfig(), _gen(s)) for s in (7, 7, 8))
    assert torch.equal(a, b)
    assert (a != c).float().mean() > 0.5  # uniform over 10: expect 90 % to differ


def test_top_k_1_is_greedy_at_any_temperature():
    logits = torch.randn(64, 30, generator=_gen(0))
    for t in (1e-30, 0.3, 1.0, 50.0):
        ids = sample(logits, SamplingConfig(temperature=t, top_k=1), _gen(1))
        assert torch.equal(ids, logits.argmax(dim=-1)), t


def test_tiny_temperature_is_greedy_without_nan():
    logits = torch.randn(64, 30, generator=_gen(0)) * 100  # / 1e-37 overflows fp32 unless shifted first
    assert torch.equal(sample(logits, SamplingConfig(temperature=1e-37), _gen(1)), logits.argmax(dim=-1))


def test_tiny_top_p_keeps_only_the_top_token():
    logits = _rows([0.3, 0.25, 0.25, 0.2], n=2000)
    assert (sample(logits, SamplingConfig(top_p=1e-6), _gen(0)) == 0).all()


def test_frequencies_match_the_distribution_at_temperature_1():
    p = [0.6, 0.3, 0.1]
    f = _freqs(sample(_rows(p), SamplingConfig(), _gen(0)), 3)
    assert torch.allclose(f, torch.tensor(p, dtype=torch.float64), atol=0.015), f


def test_temperature_half_squares_the_probabilities():
    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    f = _freqs(sample(_rows(p.tolist()), SamplingConfig(temperature=0.5), _gen(0)), 3)
    assert torch.allclose(f, p**2 / (p**2).sum(), atol=0.015), f  # [0.78, 0.20, 0.02]
    assert f[0] > 0.75


def test_top_k_support_and_renormalisation():
    p = [0.05, 0.4, 0.1, 0.3, 0.15]
    f = _freqs(sample(_rows(p), SamplingConfig(top_k=3), _gen(0)), 5)
    assert f[0] == 0 and f[2] == 0  # only {1, 3, 4} survive
    assert torch.allclose(f[[1, 3, 4]], torch.tensor([0.4, 0.3, 0.15], dtype=torch.float64) / 0.85, atol=0.015)


def test_top_p_keeps_the_smallest_set_reaching_p():
    p = [0.1, 0.5, 0.3, 0.1]  # sorted: 0.5, 0.3 (mass before 0.5 < 0.7), then 0.8 >= 0.7: stop
    f = _freqs(sample(_rows(p), SamplingConfig(top_p=0.7), _gen(0)), 4)
    assert f[0] == 0 and f[3] == 0
    assert torch.allclose(f[[1, 2]], torch.tensor([0.625, 0.375], dtype=torch.float64), atol=0.015)


def test_top_p_applies_after_top_k_on_the_renormalised_mass():
    p = [0.4, 0.3, 0.2, 0.1]
    both = sample(_rows(p, 2000), SamplingConfig(top_k=2, top_p=0.5), _gen(0))
    assert (both == 0).all()  # after top-k: [4/7, 3/7]; 4/7 >= 0.5 already
    alone = sample(_rows(p, 2000), SamplingConfig(top_p=0.5), _gen(0))
    assert set(alone.unique().tolist()) == {0, 1}  # mass before class 1 is 0.4 < 0.5


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0, 0.0]])
    out = apply_repetition_penalty(logits, [torch.tensor([0, 1, 4])], 2.0)
    assert torch.equal(out, torch.tensor([[1.0, -2.0, 0.5, -3.0, 0.0]]))  # ids 2, 3 untouched
    assert torch.equal(logits, torch.tensor([[2.0, -1.0, 0.5, -3.0, 0.0]]))  # input not modified


def test_repetition_penalty_ragged_history_per_row():
    logits = torch.tensor([[2.0, -1.0, 4.0], [2.0, -1.0, 4.0], [2.0, -1.0, 4.0]])
    history = [torch.tensor([0]), torch.tensor([], dtype=torch.long), torch.tensor([2, 2, 1])]
    out = apply_repetition_penalty(logits, history, 4.0)
    expected = torch.tensor([[0.5, -1.0, 4.0], [2.0, -1.0, 4.0], [2.0, -4.0, 1.0]])  # repeats count once
    assert torch.equal(out, expected)
    as_tensor = apply_repetition_penalty(logits, torch.tensor([[0], [2], [1]]), 4.0)  # (B, T) history
    assert torch.equal(as_tensor, torch.tensor([[0.5, -1.0, 4.0], [2.0, -1.0, 1.0], [2.0, -4.0, 4.0]]))
    as_lists = apply_repetition_penalty(logits, [[0], [], [2, 2, 1]], 4.0)
    assert torch.equal(as_lists, expected)
    assert apply_repetition_penalty(logits, history, 1.0) is logits
    assert apply_repetition_penalty(logits, None, 4.0) is logits


def test_repetition_penalty_changes_what_sample_picks():
    logits = torch.tensor([[2.0, 1.5], [2.0, 1.5]])
    cfg = SamplingConfig(temperature=0.0, repetition_penalty=2.0)
    assert sample(logits, cfg, history=[torch.tensor([0]), torch.tensor([1])]).tolist() == [1, 0]


def test_repetition_penalty_rejects_bad_history():
    logits = torch.zeros(2, 4)
    with pytest.raises(BadArgument, match="2 rows"):
        apply_repetition_penalty(logits, [torch.tensor([0])], 1.3)
    with pytest.raises(BadCodes, match=r"\[0, 4\)"):
        apply_repetition_penalty(logits, [torch.tensor([0]), torch.tensor([4])], 1.3)
    with pytest.raises(BadArgument, match="> 0"):
        apply_repetition_penalty(logits, None, 0.0)


def test_mask_forbids_classes():
    logits = _rows([0.7, 0.1, 0.1, 0.1], n=2000)
    mask = torch.tensor([False, True, True, False])  # (V,) broadcasts over rows
    ids = sample(logits, SamplingConfig(), _gen(0), mask_BV=mask)
    assert set(ids.unique().tolist()) == {1, 2}
    assert sample(torch.tensor([[5.0, 1.0, 2.0]]), GREEDY, mask_BV=torch.tensor([[False, True, True]])).item() == 2


def test_all_masked_row_and_broken_logits_raise():
    mask = torch.tensor([[True, True], [False, False]])
    with pytest.raises(BadArgument, match=r"rows \[1\]"):
        sample(torch.zeros(2, 2), SamplingConfig(), mask_BV=mask)
    with pytest.raises(BadArgument, match="NaN"):
        sample(torch.tensor([[0.0, math.nan]]), SamplingConfig())
    with pytest.raises(BadArgument, match=r"\(B, V\)"):
        sample(torch.zeros(4), SamplingConfig())
    with pytest.raises(BadArgument, match="bool"):
        sample(torch.zeros(1, 2), SamplingConfig(), mask_BV=torch.ones(1, 2))


def test_cfg_formula_and_identities():
    cond, uncond = torch.randn(3, 9, generator=_gen(0)), torch.randn(3, 9, generator=_gen(1))
    assert torch.allclose(cfg_logits(cond, uncond, 3.0), uncond + 3.0 * (cond - uncond))
    assert cfg_logits(cond, uncond, 1.0) is cond
    assert cfg_logits(cond, uncond, 0.0) is uncond
    assert cfg_logits(cond.bfloat16(), uncond.bfloat16(), 1.8).dtype == torch.bfloat16


def test_cfg_keeps_minus_inf_without_nan():
    inf = float("-inf")
    cond = torch.tensor([[1.0, inf, inf, 2.0]])
    uncond = torch.tensor([[0.5, inf, 3.0, inf]])
    for s in (0.5, 3.0):
        out = cfg_logits(cond, uncond, s)
        assert not out.isnan().any()
        assert out[0, 0] == 0.5 + s * 0.5 and torch.isneginf(out[0, 1:]).all()
    assert sample(cfg_logits(cond, uncond, 3.0), GREEDY).item() == 0


def test_cfg_rejects_bad_input():
    with pytest.raises(BadArgument, match=">= 0"):
        cfg_logits(torch.zeros(1, 3), torch.zeros(1, 3), -1.0)
    with pytest.raises(BadArgument, match="shape"):
        cfg_logits(torch.zeros(1, 3), torch.zeros(1, 4), 2.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": math.nan}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": -1.0}, "repetition_penalty"),
        ({"repetition_penalty": math.nan}, "repetition_penalty"),
    ],
)
def test_bad_config_raises_with_the_field_named(kwargs, message):
    with pytest.raises(BadArgument, match=message):
        SamplingConfig(**kwargs)


def test_release_presets():
    # (temperature, top_k, top_p, repetition_penalty): release §6 (image), §8 (text, audio)
    assert astuple(TEXT_DEFAULT) == (0.2, 20, 0.85, 1.1)
    assert astuple(IMAGE_DEFAULT) == (0.5, 1024, 0.75, 1.0)
    assert astuple(AUDIO_DEFAULT) == (0.5, 5, 0.85, 1.3)
    assert GREEDY.greedy and not AUDIO_DEFAULT.greedy


def test_greedy_takes_the_first_of_tied_maxima_and_refuses_broken_rows():
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [-math.inf, 0.0, -math.inf, 0.0]])
    assert sample(logits, GREEDY).tolist() == logits.argmax(dim=-1).tolist() == [1, 0, 1]
    for bad in (math.nan, math.inf):
        with pytest.raises(BadArgument, match="NaN"):
            sample(torch.tensor([[0.0, 1.0], [bad, 0.0]]), GREEDY)
    with pytest.raises(BadArgument, match=r"rows \[0\]"):
        sample(torch.full((1, 3), -math.inf), GREEDY)
