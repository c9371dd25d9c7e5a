"""The one decoder (imagedata.decode): bounded memory on big files, bombs refused before decoding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forkpoint.contract.errors import DataError
from forkpoint.imagedata import decode, load_dataset
from forkpoint.imagedata.decode import ImageTooLargeError, UnreadableImageError, load_pixels

SIDE = 8000  # 64 Mpx: Pillow holds 256 MB once decoded (RGB is 4 bytes a pixel inside Pillow)

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) pytest parent across fork+exec.
PEAK = """
import json, sys
from forkpoint.imagedata.decode import load_pixels
def hwm_kib():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
path, size = sys.argv[1], json.loads(sys.argv[2])
before = hwm_kib()
shape = load_pixels(path, size).pixels.shape
print(json.dumps({"shape": shape, "grew_mib": (hwm_kib() - before) / 1024}))
"""


@pytest.fixture(scope="module")
def big_images(tmp_path_factory) -> dict[str, Path]:
    """An 8000x8000 colour gradient as PNG (no reduced decoding) and as JPEG (DCT-scaled decoding)."""
    folder = tmp_path_factory.mktemp("big")
    ramp = Image.linear_gradient("L").resize((SIDE, SIDE))
    img = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90), ramp))
    out = {"png": folder / "big.png", "jpg": folder / "big.jpg"}
    img.save(out["png"], compress_level=1)
    img.save(out["jpg"], quality=85)
    return out


def _peak(path: Path, size: int | None) -> dict:
    proc = subprocess.run([sys.executable, "-c", PEAK, str(path), json.dumps(size)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak RSS is read from Linux's /proc/self/status")
def test_big_files_are_reduced_while_decoding(big_images):
    """Peak memory of one decode: the full-size Pillow buffer at most (PNG), a fraction of it (JPEG)."""
    full_mib = 4 * SIDE * SIDE / 2**20
    unbounded = _peak(big_images["png"], None)  # control: what decoding everything at full size costs
    assert unbounded["shape"] == [SIDE, SIDE, 3] and unbounded["grew_mib"] > 2 * full_mib
    png = _peak(big_images["png"], 64)
    assert png["shape"] == [64, 64, 3] and png["grew_mib"] < 1.25 * full_mib  # no copy of the full image
    jpg = _peak(big_images["jpg"], 64)
    assert jpg["shape"] == [64, 64, 3] and jpg["grew_mib"] < full_mib / 16  # decoded at 1/8 scale


def test_a_decompression_bomb_is_refused_before_decoding(png_bomb, tmp_path, imgs):
    bomb = png_bomb(15000, 15000)
    assert bomb.stat().st_size < 1_000_000  # 225 Mpx in a few hundred KB
    with pytest.raises(ImageTooLargeError, match=r"225,000,000 px, over the 178,956,970-pixel limit.*downscale it"):
        load_pixels(bomb, 224)
    for k in range(3):  # the training path refuses it the same way, naming the file
        imgs.save(tmp_path / "ds" / "zero" / f"{k}.png", imgs.digit(0, k))
        imgs.save(tmp_path / "ds" / "one" / f"{k}.png", imgs.digit(1, k))
    (tmp_path / "ds" / "one" / "bomb.png").write_bytes(bomb.read_bytes())
    with pytest.raises(DataError, match=r"1 images have more than 178,956,970 pixels \(one/bomb.png \(225,000,000 px\)\)") as e:
        load_dataset(tmp_path / "ds", size=32)
    assert "\n" not in str(e.value)


def test_our_pixel_cap_holds_where_pillow_would_only_warn(monkeypatch, tmp_path):
    """MAX_PIXELS is forkpoint's own check on the declared size, whatever Pillow's global setting."""
    path = tmp_path / "wide.png"
    Image.new("RGB", (60, 40)).save(path)
    monkeypatch.setattr(decode, "MAX_PIXELS", 2000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageTooLargeError, match=r"is 60x40, over the 2,000-pixel limit"):
        load_pixels(path, 32)


def test_unreadable_files_are_data_errors(tmp_path):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(UnreadableImageError, match="cannot read .*fake.jpg as an image"):
        load_pixels(fake, 32)
    assert issubclass(UnreadableImageError, DataError) and issubclass(ImageTooLargeError, DataError)


def test_non_square_images_keep_their_centre(tmp_path):
    """Shorter side to R, centre crop: a wide image's left and right margins are cut, not squashed in."""
    pixels = np.zeros((40, 120, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)  # red left third, green middle, blue right third
    pixels[:, 40:80] = (0, 255, 0)
    pixels[:, 80:] = (0, 0, 255)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    out = load_pixels(tmp_path / "wide.png", 20).pixels
    assert out.shape == (20, 20, 3) and (out[:, 2:-2] == (0, 255, 0)).all()
