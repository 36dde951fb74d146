"""A time code drawn into video frames and read back from decoded pictures, to measure glass-to-glass latency.

The code is two rows of ``BITS`` blocks across the top of the picture: the first row holds the bits of the
wall-clock time in milliseconds (modulo 2**32, most significant first), white for 1; the second row holds
their complement, so a picture damaged by compression or caught mid-frame fails the check instead of giving a
wrong time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS = 32
ROW_FRACTION = 0.05  # height of one row as a share of the picture height

Image = npt.NDArray[np.uint8]


def block_geometry(width: int, height: int) -> tuple[int, int]:
    """Width and height in pixels of one code block."""
    return width // BITS, max(4, int(height * ROW_FRACTION))


def write_stamp(image: Image, ms: int) -> None:
    """Draw ``ms`` (wall-clock milliseconds) into an H×W×3 or H×W image in place."""
    height, width = image.shape[:2]
    bw, bh = block_geometry(width, height)
    value = ms & 0xFFFFFFFF
    for i in range(BITS):
        bit = (value >> (BITS - 1 - i)) & 1
        image[0:bh, i * bw : (i + 1) * bw] = 255 if bit else 0
        image[bh : 2 * bh, i * bw : (i + 1) * bw] = 0 if bit else 255


def read_stamp(image: Image) -> int | None:
    """The milliseconds drawn by ``write_stamp`` (modulo 2**32), or None when the code does not check."""
    gray = image if image.ndim == 2 else image.mean(axis=2)
    height, width = gray.shape[:2]
    bw, bh = block_geometry(width, height)
    value = 0
    for i in range(BITS):
        x0, x1 = i * bw + bw // 4, (i + 1) * bw - bw // 4
        top = float(gray[bh // 4 : bh - bh // 4, x0:x1].mean())
        bottom = float(gray[bh + bh // 4 : 2 * bh - bh // 4, x0:x1].mean())
        bit = top > 128
        if bit == (bottom > 128) or abs(top - bottom) < 80:
            return None
        value = (value << 1) | int(bit)
    return value


def latency_ms(stamp: int, now_ms: int) -> int:
    """Milliseconds from a stamp to ``now_ms``, handling the 2**32 wrap."""
    return (now_ms - stamp) & 0xFFFFFFFF
