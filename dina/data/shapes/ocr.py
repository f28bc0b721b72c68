"""Reading a sign's word with Debian's tesseract, run as a subprocess on a cropped, upscaled plate.

Choice when tesseract is missing: reading raises `MissingDependency`, and only when a sign
actually has to be read. Callers that can do without the text (`parse_image(read_text=False)`,
`dina data judge --no-read-signs`) never look for the binary.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import numpy as np
from PIL import Image

from dina.errors import MissingDependency

UPSCALE = 2  # tesseract reads best with capitals ~40-60 px tall; plates carry 22-30 px
BORDER_PX = 12
TIMEOUT_S = 30


def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


def normalize_text(text: str) -> str:
    """Upper-case letters and digits only: what a sign's word is compared by."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def read_word(plate_rgb: np.ndarray) -> str:
    """The word on an (h, w, 3) uint8 crop of a sign plate, normalized; "" if nothing was read."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise MissingDependency(
            "reading a sign needs the tesseract binary (apt-get install tesseract-ocr); "
            "judge without sign reading (--no-read-signs) to skip it"
        )
    gray = Image.fromarray(plate_rgb, mode="RGB").convert("L")
    gray = gray.resize((gray.width * UPSCALE, gray.height * UPSCALE), Image.Resampling.LANCZOS)
    # A white margin keeps glyphs off the crop's edge, where tesseract drops them.
    canvas = Image.new("L", (gray.width + 2 * BORDER_PX, gray.height + 2 * BORDER_PX), 255)
    canvas.paste(gray, (BORDER_PX, BORDER_PX))
    png = io.BytesIO()
    canvas.save(png, format="PNG")
    cmd = [exe, "stdin", "stdout", "--psm", "7", "-c", "tessedit_char_whitelist=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    try:
        out = subprocess.run(cmd, input=png.getvalue(), capture_output=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MissingDependency(f"tesseract failed to run: {e}") from e
    if out.returncode != 0:
        raise MissingDependency(f"tesseract exited with {out.returncode}: {out.stderr.decode(errors='replace')[:200]}")
    return normalize_text(out.stdout.decode("utf-8", errors="replace"))
