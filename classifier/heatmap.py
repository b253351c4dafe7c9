"""A confusion matrix drawn as a PNG heat map, with zlib and struct from the standard library.

Why not matplotlib or Pillow: the picture is a grid of shaded squares, about forty lines of
PNG encoding; a plotting library would add tens of MB to the trainer's image for it. Cells run
from white (no rows) to dark blue (the largest count of the matrix); rows are the true labels
and columns the predicted ones, in the manifest's label order. The console draws the labels.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CELL_PX = 32
GAP_PX = 1
# The darkest shade, for the largest count; zero is white.
DARK = (8, 48, 107)
GRID = (200, 200, 200)


def render(counts: Sequence[Sequence[int]], cell_px: int = CELL_PX) -> bytes:
    """An RGB PNG of the square matrix `counts`, one `cell_px` square per cell."""
    n = len(counts)
    if n == 0 or any(len(row) != n for row in counts):
        raise ValueError(f"a confusion matrix is square and not empty, got {n} rows")
    peak = max(max(row) for row in counts) or 1
    side = n * (cell_px + GAP_PX) + GAP_PX
    grid_line = bytes(GRID) * side
    rows = []
    for row in counts:
        rows.append(grid_line)
        rows.extend([_scanline([_shade(v, peak) for v in row], cell_px)] * cell_px)
    rows.append(grid_line)
    # Each scanline starts with filter type 0 (none): the image is flat colour, deflate suffices.
    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _shade(value: int, peak: int) -> tuple[int, int, int]:
    share = value / peak
    r, g, b = (round(255 - (255 - dark) * share) for dark in DARK)
    return r, g, b


def _scanline(colours: Sequence[tuple[int, int, int]], cell_px: int) -> bytes:
    """One row of pixels: a grid pixel, then each cell's colour `cell_px` wide and a grid pixel."""
    grid = bytes(GRID)
    return grid + b"".join(bytes(c) * cell_px + grid for c in colours)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
