"""PNG files of pixel arrays, written with zlib alone.

Pillow, behind ``savefig``, filters every row of an image five ways to pick the best filter before compressing.
For the flat colours of a chart that search buys nothing: unfiltered rows compressed with zlib at level 1 come
out a few per cent *smaller* than Pillow's file at the same level, in a third of the time — ~6 ms of every
figure, four figures in each of 1,741 reports. The pixels are the same (``tests/test_pngwrite.py`` decodes the
files with Pillow).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {3: 2, 4: 6}  # channels → PNG colour type (RGB, RGBA), 8 bits each
_INCH = 0.0254  # metres


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode(
    pixels: np.ndarray, *, level: int = 1, dpi: float | None = None, text: Mapping[str, str] | None = None
) -> bytes:
    """The PNG file of ``pixels`` (height × width × 3 or 4, ``uint8``): rows unfiltered, zlib ``level``.

    ``dpi`` is recorded as the physical pixel size (pHYs) and ``text`` as Latin-1 tEXt chunks, as Pillow records
    them for ``savefig``.
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in _COLOUR_TYPES:
        raise ValueError(f"expected height × width × 3 or 4 uint8 pixels, got {pixels.dtype} {pixels.shape}")
    height, width, channels = pixels.shape
    rows = np.empty((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:] = pixels.reshape(height, width * channels)
    out = [
        SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)),
    ]
    if dpi is not None:
        per_metre = int(dpi / _INCH + 0.5)
        out.append(_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
    out += [_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)), _chunk(b"IEND", b"")]
    return b"".join(out)
