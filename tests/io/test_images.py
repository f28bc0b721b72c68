"""load_image: every odd image mode is normalized to RGB; every broken file is a BadImage."""

import io

import numpy as np
import pytest
from PIL import Image

from dina.errors import BadImage, BadInputFile
from dina.io.images import load_image, save_png


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)


def test_png_round_trip_is_exact_and_reproducible(tmp_path, rgb):
    save_png(tmp_path / "a.png", rgb)
    save_png(tmp_path / "b.png", rgb)
    assert np.array_equal(load_image(tmp_path / "a.png"), rgb)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "I;16", "1"])
def test_any_mode_becomes_rgb(tmp_path, rgb, mode):
    img = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    img.save(path)
    out = load_image(path)
    assert out.shape == (30, 40, 3) and out.dtype == np.uint8


def test_sixteen_bit_keeps_its_range(tmp_path):
    ramp = (np.linspace(0, 65535, 64).astype(np.uint16)[None, :]).repeat(4, axis=0)
    Image.fromarray(ramp).save(tmp_path / "r.png")
    out = load_image(tmp_path / "r.png")
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255  # rescaled, not truncated to the low byte


def test_rgba_is_composited_on_white(tmp_path):
    arr = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "t.png")
    assert (load_image(tmp_path / "t.png") == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").shape == (40, 20, 3)


def test_missing_and_directory(tmp_path):
    with pytest.raises(BadInputFile, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(BadInputFile, match="not a file"):
        load_image(tmp_path)


def test_not_an_image(tmp_path):
    (tmp_path / "x.png").write_text("hello, I am text")
    with pytest.raises(BadImage, match="not an image"):
        load_image(tmp_path / "x.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(tmp_path, rgb, fmt):
    buf = io.BytesIO()
    Image.fromarray(np.kron(rgb, np.ones((8, 8, 1), dtype=np.uint8))).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"t.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage):
        load_image(path)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(BadImage, match="over the limit"):
        load_image(tmp_path / "big.png", max_pixels=1000 * 1000)
