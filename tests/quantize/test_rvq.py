"""ResidualVQ: exact decode, straight-through gradient, loss, EMA arithmetic, restarts, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dina.errors import BadArgument, BadCodes, BadConfig
from dina.quantize import ResidualVQ, RVQConfig, nearest_codes
from dina.quantize.codebook import EMACodebook


def _rvq(**overrides) -> ResidualVQ:
    fields = {"dim": 8, "codebook_sizes": (16, 8, 4), "kmeans_init": False, "dead_threshold": 0.0}
    fields.update(overrides)
    return ResidualVQ(RVQConfig(**fields))


def _set_codebook(book: EMACodebook, embed_KD: torch.Tensor, cluster_size: float = 1.0) -> None:
    book.embed_KD.copy_(embed_KD)
    book.cluster_size_K.fill_(cluster_size)
    book.embed_sum_KD.copy_(embed_KD * cluster_size)


def _books(rvq: ResidualVQ) -> list[EMACodebook]:
    return [b for b in rvq.codebooks if isinstance(b, EMACodebook)]


def test_decode_of_encode_is_exactly_the_forward_output() -> None:
    rvq = _rvq(kmeans_init=True, dead_threshold=1.0)
    x = torch.randn(3, 40, 8)
    rvq(x)  # one training step so the codebooks are data-shaped
    rvq.eval()
    out = rvq(x)
    codes = rvq.encode(x)
    assert codes.shape == (3, 40, 3) and codes.dtype == torch.int64
    assert torch.equal(out.codes_NL, codes)
    assert torch.equal(out.quantized_ND, rvq.decode(codes))
    assert torch.allclose(rvq.embed_codes(codes).sum(dim=-2), rvq.decode(codes), atol=1e-6)


def test_encode_of_decode_returns_the_codes_on_a_separated_codebook() -> None:
    rvq = _rvq(codebook_sizes=(16, 16, 16))
    gen = torch.Generator().manual_seed(3)
    for book, scale in zip(_books(rvq), (100.0, 10.0, 1.0), strict=True):
        patterns = torch.randperm(256, generator=gen)[:16]
        signs_KD = ((patterns.unsqueeze(1) >> torch.arange(8)) & 1).float() * 2 - 1
        _set_codebook(book, scale * signs_KD)
    codes = torch.stack([torch.randint(16, (50,), generator=gen) for _ in range(3)], dim=1)
    assert torch.equal(rvq.encode(rvq.decode(codes)), codes)


def test_nearest_codes_match_a_float64_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    r_ND, embed_KD = torch.randn(300, 12, generator=gen), torch.randn(70, 12, generator=gen)
    brute_N = torch.cdist(r_ND.double(), embed_KD.double()).argmin(dim=1)
    assert torch.equal(nearest_codes(r_ND, embed_KD), brute_N)


def test_nearest_codes_blocks_rows_without_changing_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(1)
    r_ND, embed_KD = torch.randn(257, 6, generator=gen), torch.randn(64, 6, generator=gen)
    whole = nearest_codes(r_ND, embed_KD)
    monkeypatch.setattr("dina.quantize.codebook._BLOCK_ELEMENTS", 64 * 5)  # 5-row blocks
    assert torch.equal(nearest_codes(r_ND, embed_KD), whole)


def test_distance_is_fp32_even_for_bf16_input() -> None:
    rvq = _rvq(dim=4, codebook_sizes=(2,))
    x = torch.ones(1, 4, dtype=torch.bfloat16)
    # Both entries round to 1.0 in bf16 (a tie -> entry 0); in fp32 entry 1 is nearer.
    _set_codebook(_books(rvq)[0], torch.tensor([[1.003] * 4, [1.001] * 4]))
    rvq.eval()
    out = rvq(x)
    assert out.codes_NL.tolist() == [[1]]
    assert out.quantized_ND.dtype == torch.bfloat16


def test_straight_through_gradient_reaches_the_input() -> None:
    rvq = _rvq()
    x = torch.randn(10, 8, requires_grad=True)
    out = rvq(x)
    out.quantized_ND.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))
    x.grad = None
    rvq(x).commit_loss.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_commit_loss_is_the_mean_over_levels_of_mse_to_the_cumulative_quantization() -> None:
    rvq = _rvq(commitment_weight=0.25).eval()
    x = torch.randn(20, 8)
    out = rvq(x)
    per_level = rvq.embed_codes(out.codes_NL)  # (N, L, D)
    cumulative = per_level.cumsum(dim=1)
    expected = 0.25 * ((x.unsqueeze(1) - cumulative) ** 2).mean(dim=(0, 2)).mean()
    assert torch.allclose(out.commit_loss, expected, rtol=1e-5)


def test_ema_update_matches_a_hand_computation_with_laplace_smoothing() -> None:
    rvq = _rvq(dim=2, codebook_sizes=(3,), decay=0.9, eps=0.1)
    _set_codebook(_books(rvq)[0], torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 1.0]])
    out = rvq(x)
    assert out.codes_NL.squeeze(1).tolist() == [0, 0, 1]
    assert torch.equal(out.quantized_ND, torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]]))  # pre-update entries
    n = [0.9 + 0.1 * 2, 0.9 + 0.1 * 1, 0.9]
    m = [[0.1, 0.1], [9.0 + 0.9, 0.1], [0.0, 9.0]]
    total = sum(n)
    smoothed = [(nk + 0.1) / (total + 3 * 0.1) * total for nk in n]
    book = _books(rvq)[0]
    assert np.allclose(book.cluster_size_K.numpy(), n, atol=1e-6)
    assert np.allclose(book.embed_sum_KD.numpy(), m, atol=1e-6)
    assert np.allclose(book.embed_KD.numpy(), [[a / s for a in row] for row, s in zip(m, smoothed, strict=True)])


def test_residual_weights_scale_each_rows_share_of_the_ema_statistics() -> None:
    # α = 0.5: w_i = ‖r_i‖ / mean ‖r‖, so the far row counts three times the near ones.
    rvq = _rvq(dim=2, codebook_sizes=(2,), decay=0.9, eps=0.1, residual_weight_power=0.5)
    _set_codebook(_books(rvq)[0], torch.tensor([[0.0, 0.0], [10.0, 0.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    assert rvq(x).codes_NL.squeeze(1).tolist() == [0, 0, 0]
    w = np.array([1.0, 1.0, 3.0]) / (5.0 / 3.0)
    book = _books(rvq)[0]
    assert np.allclose(book.cluster_size_K.numpy(), [0.9 + 0.1 * w.sum(), 0.9], atol=1e-6)
    assert np.allclose(book.embed_sum_KD.numpy()[0], 0.1 * (w[:, None] * x.numpy()).sum(0), atol=1e-6)
    # The weighted mean sits nearer the heavy row than the plain mean (4/3, 1/3) would.
    plain = _rvq(dim=2, codebook_sizes=(2,), decay=0.9, eps=0.1)
    _set_codebook(_books(plain)[0], torch.tensor([[0.0, 0.0], [10.0, 0.0]]))
    plain(x)
    assert book.embed_KD[0, 0] > _books(plain)[0].embed_KD[0, 0]


def test_residual_weights_put_more_entries_where_residuals_are_large() -> None:
    # 90% of the rows are a tight cluster, 10% a wide one: weighting moves entries to the wide one
    # and lowers its error, as the vision preset uses it (module docstring).
    g = torch.Generator().manual_seed(0)
    tight, wide = 0.05 * torch.randn(900, 4, generator=g), 3.0 * torch.randn(100, 4, generator=g) + 5.0

    def wide_error(power: float) -> float:
        rvq = _rvq(dim=4, codebook_sizes=(32,), dead_threshold=0.5, residual_weight_power=power, seed=1)
        for step in range(60):
            order = torch.randperm(1000, generator=torch.Generator().manual_seed(step))
            rvq(torch.cat([tight, wide])[order[:250]])
        rvq.eval()
        return float((rvq.decode(rvq.encode(wide)) - wide).square().sum(1).mean())

    assert wide_error(0.5) < 0.8 * wide_error(0.0)


def _reference_step(embed, size, summ, x, decay, eps):
    """Float64 numpy reference of one training step over all levels."""
    r = x.astype(np.float64)
    for level in range(len(embed)):
        e = embed[level]
        codes = ((r[:, None, :] - e[None]) ** 2).sum(-1).argmin(1)
        counts = np.bincount(codes, minlength=len(e))
        sums = np.zeros_like(e)
        np.add.at(sums, codes, r)
        q = e[codes]
        size[level] = decay * size[level] + (1 - decay) * counts
        summ[level] = decay * summ[level] + (1 - decay) * sums
        total = size[level].sum()
        embed[level] = summ[level] / ((size[level] + eps) / (total + len(e) * eps) * total)[:, None]
        r = r - q


def test_every_level_updates_from_its_own_residual_input() -> None:
    rvq = _rvq(decay=0.8, eps=1e-3)
    books = _books(rvq)
    embed = [b.embed_KD.double().numpy().copy() for b in books]
    size = [b.cluster_size_K.double().numpy().copy() for b in books]
    summ = [b.embed_sum_KD.double().numpy().copy() for b in books]
    for step in range(3):
        x = torch.randn(64, 8, generator=torch.Generator().manual_seed(step))
        rvq(x)
        _reference_step(embed, size, summ, x.numpy(), 0.8, 1e-3)
    for level, book in enumerate(books):
        assert np.allclose(book.embed_KD.numpy(), embed[level], atol=1e-5)
        assert np.allclose(book.cluster_size_K.numpy(), size[level], atol=1e-5)


def test_dead_restart_replaces_only_dead_entries_and_resets_their_state() -> None:
    rvq = _rvq(dim=2, codebook_sizes=(4,), decay=0.5, eps=1e-5, dead_threshold=0.6)
    far = torch.tensor([[0.0, 0.0], [5.0, 0.0], [1000.0, 0.0], [0.0, 1000.0]])
    _set_codebook(_books(rvq)[0], far)
    x = torch.tensor([[0.1, 0.0], [4.9, 0.0], [5.1, 0.2], [-0.1, 0.3]])
    out = rvq(x)
    book = _books(rvq)[0]
    assert out.restarts_L.tolist() == [2]
    # Live entries 0 and 1 hold the plain EMA result.
    n = torch.tensor([0.5 + 0.5 * 2, 0.5 + 0.5 * 2, 0.5, 0.5])
    total = n.sum()
    smoothed = (n + 1e-5) / (total + 4e-5) * total
    m01 = 0.5 * far[:2] + 0.5 * torch.stack([x[[0, 3]].sum(0), x[[1, 2]].sum(0)])
    assert torch.allclose(book.embed_KD[:2], m01 / smoothed[:2, None], atol=1e-6)
    assert torch.allclose(book.cluster_size_K[:2], n[:2])
    # Dead entries 2 and 3 now sit on batch vectors with a fresh EMA state.
    for k in (2, 3):
        assert any(torch.equal(book.embed_KD[k], row) for row in x)
        assert float(book.cluster_size_K[k]) == 1.0
        assert torch.equal(book.embed_sum_KD[k], book.embed_KD[k])


def test_no_updates_in_eval_mode_or_from_encode() -> None:
    rvq = _rvq(kmeans_init=True, dead_threshold=1.0)
    before = {k: v.clone() for k, v in rvq.state_dict().items()}
    x = torch.randn(30, 8)
    rvq.encode(x)  # training mode, but encode never updates
    rvq.eval()
    rvq(x)
    assert all(torch.equal(v, before[k]) for k, v in rvq.state_dict().items())
    rvq.train()
    with torch.no_grad():
        out = rvq(x)  # updates follow self.training, not the grad mode
    assert not torch.equal(rvq.state_dict()["codebooks.0.embed_KD"], before["codebooks.0.embed_KD"])
    assert int(rvq.steps) == 1 and bool(rvq.initialized) and out.restarts_L.shape == (3,)


def test_usage_and_perplexity_describe_the_batch_histogram() -> None:
    rvq = _rvq(dim=2, codebook_sizes=(4,)).eval()
    _set_codebook(_books(rvq)[0], torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    out = rvq(torch.tensor([[0.1, 0.0], [0.0, 0.2], [9.0, 0.0], [10.0, 1.0]]))
    assert torch.allclose(out.perplexity_L, torch.tensor([2.0]))
    assert torch.allclose(out.usage_L, torch.tensor([0.5]))
    assert out.residual_norm_L.shape == (1,) and out.restarts_L.tolist() == [0]


def test_bad_codes_are_rejected_with_a_clear_message() -> None:
    rvq = _rvq()
    with pytest.raises(BadCodes, match="level 1"):
        rvq.decode(torch.tensor([[0, 8, 0]]))
    with pytest.raises(BadCodes, match="-1 at level 0"):
        rvq.decode(torch.tensor([[-1, 0, 0]]))
    with pytest.raises(BadCodes, match="3 levels"):
        rvq.decode(torch.tensor([[0, 0]]))
    with pytest.raises(BadCodes, match="integer"):
        rvq.embed_codes(torch.zeros(2, 3))
    assert rvq.decode(torch.tensor([[15, 7, 3]])).shape == (1, 8)


def test_wrong_input_dim_and_bad_config_are_rejected() -> None:
    with pytest.raises(BadArgument, match=r"\(\.\.\., 8\)"):
        _rvq()(torch.randn(3, 7))
    for bad in (
        {"decay": 1.0},
        {"codebook_sizes": ()},
        {"codebook_sizes": (1,)},
        {"eps": 0.0},
        {"dim": 0},
        {"residual_weight_power": -1.0},
    ):
        with pytest.raises(BadConfig):
            RVQConfig(**{"dim": 8, "codebook_sizes": (4,), **bad})
    config = RVQConfig(dim=8, codebook_sizes=(8192, 4096, 2048) + (1024,) * 5)
    assert RVQConfig.from_dict(config.to_dict()) == config and config.levels == 8


def _train(rvq: ResidualVQ, steps: range) -> None:
    for step in steps:
        rvq(torch.randn(24, 8, generator=torch.Generator().manual_seed(step)))


@pytest.mark.parametrize("power", [0.0, 0.5])
def test_same_seed_same_codebooks_and_resume_reproduces(power: float) -> None:
    settings = {"kmeans_init": True, "dead_threshold": 1.0, "residual_weight_power": power}
    a, b, other = _rvq(**settings), _rvq(**settings), _rvq(seed=1, **settings)
    for rvq in (a, b, other):
        _train(rvq, range(4))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.state_dict()["codebooks.0.embed_KD"], other.state_dict()["codebooks.0.embed_KD"])
    first, resumed = _rvq(**settings), _rvq(**settings)
    _train(first, range(2))
    resumed.load_state_dict(first.state_dict())
    _train(resumed, range(2, 4))
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in a.state_dict().items())


def test_training_lowers_the_quantization_error_on_clustered_data() -> None:
    gen = torch.Generator().manual_seed(0)
    centers = 4 * torch.randn(32, 8, generator=gen)
    rvq = _rvq(codebook_sizes=(32, 16), dead_threshold=0.5, decay=0.9)
    first = None
    for _ in range(30):
        x = centers[torch.randint(32, (256,), generator=gen)] + 0.1 * torch.randn(256, 8, generator=gen)
        loss = float(rvq(x).commit_loss)
        first = loss if first is None else first
    assert loss < 0.2 * first


def test_codes_agree_with_vector_quantize_pytorch_on_the_same_codebooks() -> None:
    pytest.importorskip("vector_quantize_pytorch")
    from dina.bench.rvq import bench_rvq

    result = bench_rvq(8, (16, 8, 8), 256, repeats=1)
    assert result["code_agreement"] == 1.0 and result["quantized_max_abs_diff"] == 0.0


def test_code_usage_counts_levels_and_their_perplexity():
    from dina.quantize import code_usage

    codes = torch.tensor([[0, 1], [0, 2], [1, 3], [1, 0]])  # level 0: two codes evenly; level 1: four evenly
    usage, perplexity = code_usage(codes, (4, 8))
    assert usage == [0.5, 0.5]
    assert perplexity == pytest.approx([2.0, 4.0])
