"""Pixel decoder: packed images decode as they would alone, with no leakage across images."""

import torch

from dina.vision.pixel_decoder import PixelDecoder, PixelDecoderConfig


def _decoder():
    torch.manual_seed(0)
    dec = PixelDecoder(PixelDecoderConfig(code_dim=16, dim=32, depth=2, heads=2, mlp_dim=64))
    torch.nn.init.normal_(dec.head_fc2.weight, std=0.02)  # the zero-initialized head would hide everything
    return dec.eval()


def test_packed_equals_each_image_alone_and_no_leakage():
    dec = _decoder()
    grids = [(2, 3), (4, 1), (1, 1)]
    codes = [torch.randn(h * w, 16) for h, w in grids]
    with torch.no_grad():
        packed = torch.split(dec(torch.cat(codes), grids), [4 * h * w for h, w in grids])
        for c, g, p in zip(codes, grids, packed, strict=True):
            assert torch.allclose(dec(c, [g]), p, atol=1e-5)
        changed = [codes[0], codes[1] + 1.0, codes[2]]
        again = torch.split(dec(torch.cat(changed), grids), [4 * h * w for h, w in grids])
    assert torch.equal(again[0], packed[0]) and torch.equal(again[2], packed[2])
    assert not torch.allclose(again[1], packed[1])


def test_attention_is_bidirectional_within_an_image():
    dec = _decoder()
    codes = torch.randn(6, 16)
    with torch.no_grad():
        base = dec(codes, [(2, 3)])
        codes[-1] += 1.0
        moved = dec(codes, [(2, 3)])
    assert not torch.allclose(base[:4], moved[:4])  # the first token's patches see the last token


def test_zero_head_starts_at_the_mean_image():
    torch.manual_seed(0)
    dec = PixelDecoder(PixelDecoderConfig(code_dim=16, dim=32, depth=2, heads=2, mlp_dim=64))
    out = dec(torch.randn(4, 16), [(2, 2)])
    assert out.shape == (16, 588) and torch.all(out == dec.head_fc2.bias)


def test_shortcut_maps_each_token_to_its_own_four_patches():
    torch.manual_seed(0)
    cfg = PixelDecoderConfig(code_dim=16, dim=32, depth=2, heads=2, mlp_dim=64, shortcut=True)
    dec = PixelDecoder(cfg).eval()
    codes = torch.randn(6, 16)
    assert torch.all(dec(codes, [(2, 3)]) == dec.head_fc2.bias)  # zero start: the mean image, as without it
    torch.nn.init.normal_(dec.shortcut.weight, std=0.1)  # the ViT path stays at its zero head
    with torch.no_grad():
        base = dec(codes, [(2, 3)])
        codes[2] += 1.0
        moved = dec(codes, [(2, 3)])
    changed = (moved != base).any(dim=1).nonzero().flatten().tolist()
    assert changed == [8, 9, 10, 11]  # token 2's 2x2 block of patches, nothing else
    plain = PixelDecoder(PixelDecoderConfig(code_dim=16, dim=32, depth=1, heads=2, mlp_dim=8))
    assert "shortcut.weight" not in plain.state_dict()  # off by default: the release's keys
