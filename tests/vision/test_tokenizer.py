"""VisionTokenizer: codes decode back exactly, codes files round-trip, bad codes and checkpoints are named."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dina.data.shapes import make_example
from dina.errors import BadCheckpoint, BadCodes, BadConfig, BadInputFile
from dina.vision.config import vision_tiny
from dina.vision.tokenizer import QuantProjection, VisionCodes, VisionTokenizer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = VisionTokenizer(vision_tiny())
    m.rvq.train()
    images = [make_example(0, "train", i)[1] for i in range(4)]
    m.rvq(m.quant_proj(m.features(m.preprocess(images)).features_ND))  # initialize the codebooks from data
    return m.eval()


@pytest.fixture(scope="module")
def images():
    return [make_example(0, "train", i)[1] for i in range(3)] + [np.full((1, 300, 3), 200, dtype=np.uint8)]


def test_encode_gives_one_grid_per_image_at_28_px(model, images):
    codes = model.encode(images)
    assert len(codes.codes) == 4
    for grid, size in zip(codes.codes, codes.sizes, strict=True):
        assert grid.shape[2] == 8 and (grid.shape[0] * 28, grid.shape[1] * 28) == size
        assert int(grid.min()) >= 0 and int(grid.max()) < model.config.codebook_sizes[0]
    assert codes.original_sizes[3] == (1, 300)  # a 1:300 strip is resized within the rules, not refused


def test_codes_decode_back_exactly(model, images):
    packed = model.preprocess(images)
    q_out = model.rvq(model.quant_proj(model.features(packed).features_ND))
    codes = model.encode(images)
    assert torch.equal(model.code_embeddings(codes), q_out.quantized_ND)
    assert torch.equal(torch.cat([c.reshape(-1, 8) for c in codes.codes]), q_out.codes_NL)


def test_decode_sizes_and_determinism(model, images):
    codes = model.encode(images[:2])
    a, b = model.decode(codes, seed=3), model.decode(codes, seed=3)
    assert [x.shape for x in a] == [(*s, 3) for s in codes.sizes]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(x.dtype == np.uint8 for x in model.decode(codes, refine=False))


def test_refining_is_deterministic_by_default_and_samples_at_temperature_1(model, images):
    codes = model.encode(images[:1])
    model = copy.deepcopy(model)  # the fixture stays untouched
    torch.manual_seed(1)
    torch.nn.init.normal_(model.refiner.out_conv.weight, std=0.05)  # a refiner that changes its input
    default = model.decode(codes)[0]
    assert np.array_equal(default, model.decode(codes, seed=7)[0])  # the seed does not matter at temperature 0
    assert np.array_equal(default, model.decode(codes, temperature=0.0)[0])
    assert not np.array_equal(default, model.decode(codes, temperature=1.0)[0])


def test_projection_statistics_center_scale_and_persist(tmp_path, images):
    torch.manual_seed(1)
    m = VisionTokenizer(vision_tiny())
    with torch.no_grad():
        z = m.features(m.preprocess(images)).features_ND
    m.quant_proj.set_statistics(z)
    s = m.quant_proj.standardize(z)
    assert torch.allclose(s.mean(0), torch.zeros(s.shape[1]), atol=1e-4)
    # One global scale: unit mean variance, channels keep their relative variances.
    assert s.var(0).mean().item() == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(s.var(0) / z.var(0), (s.var(0) / z.var(0))[0].expand(z.shape[1]), rtol=1e-3)
    loaded = VisionTokenizer.from_pretrained(m.save_pretrained(tmp_path / "tok"))
    for name in ("mean", "std", "components"):
        assert torch.equal(getattr(loaded.quant_proj, name), getattr(m.quant_proj, name))
    assert torch.equal(loaded.quant_proj(z), m.quant_proj(z))


def test_pca_projection_keeps_the_leading_feature_variance():
    torch.manual_seed(0)
    scales = torch.linspace(3.0, 0.1, 32)
    z = torch.randn(4000, 32) @ torch.linalg.qr(torch.randn(32, 32)).Q * scales + 5.0  # a rotated, offset ellipsoid
    proj = QuantProjection(32, 8, "pca")
    assert not list(proj.parameters())  # fixed: nothing for the RVQ stage to collapse
    proj.set_statistics(z)
    x = proj(z).double()
    cov = torch.cov(x.T)
    assert cov.diagonal().mean().item() == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(cov - torch.diag(cov.diagonal()), torch.zeros(8, 8, dtype=torch.float64), atol=1e-3)
    assert (cov.diagonal().diff() < 0).all()  # ordered, and not whitened
    # The 8 outputs hold the 8 largest variances: their relative shares match the scales'.
    share = cov.diagonal() / cov.diagonal().sum()
    expected = scales[:8].double() ** 2 / (scales[:8].double() ** 2).sum()
    assert torch.allclose(share, expected, atol=0.02)
    with pytest.raises(BadConfig):
        QuantProjection(8, 16, "pca")
    with pytest.raises(BadConfig):
        QuantProjection(8, 4, "conv")
    with pytest.raises(BadConfig):
        QuantProjection(8, 4, "pca", whiten=1.5)


@pytest.mark.parametrize("whiten", [0.5, 1.0])
def test_pca_projection_whitening_flattens_the_spectrum_by_its_exponent(whiten):
    """Output i has variance ∝ λ_i^(1 - whiten), mean 1, same directions as the unwhitened projection."""
    torch.manual_seed(0)
    scales = torch.linspace(3.0, 0.3, 32)
    z = torch.randn(20000, 32) @ torch.linalg.qr(torch.randn(32, 32)).Q * scales
    plain, flat = QuantProjection(32, 8, "pca"), QuantProjection(32, 8, "pca", whiten=whiten)
    plain.set_statistics(z)
    flat.set_statistics(z)
    var = torch.cov(flat(z).double().T).diagonal()
    assert var.mean().item() == pytest.approx(1.0, abs=1e-3)
    lam = scales[:8].double() ** 2
    expected = lam ** (1 - whiten)
    assert torch.allclose(var / var.sum(), expected / expected.sum(), atol=0.01)
    cos = torch.nn.functional.cosine_similarity(plain.components, flat.components, dim=-1)
    assert torch.allclose(cos.abs(), torch.ones(8), atol=1e-5)  # only the lengths change


def test_batched_encode_equals_one_by_one(model, images):
    together = model.encode(images)
    for i, image in enumerate(images):
        assert torch.equal(model.encode([image]).codes[0], together.codes[i])


def test_codes_file_round_trip(tmp_path, model, images):
    codes = model.encode(images[:2])
    codes.save(tmp_path / "c.safetensors")
    back = VisionCodes.load(tmp_path / "c.safetensors")
    assert back.sizes == codes.sizes and all(torch.equal(a, b) for a, b in zip(back.codes, codes.codes, strict=True))


def test_bad_codes_are_refused(model, images):
    codes = model.encode(images[:1])
    grid = codes.codes[0]
    bad = [
        dataclasses.replace(codes, codes=(grid.clone().fill_(model.config.codebook_sizes[0]),)),
        dataclasses.replace(codes, codes=(grid[..., :7],)),
        dataclasses.replace(codes, codes=(grid[:-1],)),
        dataclasses.replace(codes, codes=(grid.float(),)),
    ]
    for c, match in zip(bad, ("must be in", r"\(h, w, 8\)", "does not match", "integers"), strict=True):
        with pytest.raises(BadCodes, match=match):
            model.decode(c)


def test_codes_file_that_is_not_codes(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    with pytest.raises(BadCodes):
        VisionCodes.load(tmp_path / "x.safetensors")
    with pytest.raises(BadInputFile):
        VisionCodes.load(tmp_path / "missing.safetensors")


def test_save_and_load_pretrained(tmp_path, model, images):
    model.save_pretrained(tmp_path / "tok")
    back = VisionTokenizer.from_pretrained(tmp_path / "tok")
    assert all(torch.equal(a, b) for a, b in zip(back.encode(images).codes, model.encode(images).codes, strict=True))


def test_mismatched_checkpoint_names_key_and_shapes(tmp_path, model):
    model.save_pretrained(tmp_path / "tok")
    path = tmp_path / "tok" / "model.safetensors"
    state = load_file(str(path))
    key = "tokenizer.pixel_decoder.post_quant.weight"
    state[key] = torch.zeros(3, 3)
    save_file(state, str(path))
    with pytest.raises(BadCheckpoint, match=r"post_quant.weight.*\(3, 3\).*\(128, 128\)"):
        VisionTokenizer.from_pretrained(tmp_path / "tok")
    del state[key]
    save_file(state, str(path))
    with pytest.raises(BadCheckpoint, match="missing tensor"):
        VisionTokenizer.from_pretrained(tmp_path / "tok")
    with pytest.raises(BadInputFile):
        VisionTokenizer.from_pretrained(tmp_path / "nowhere")
