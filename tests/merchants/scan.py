"""Reading QR images back as a phone does: the PNG or SVG turned into pixels here, the pixels
read by a real decoder (zxing-cpp), so that a test asserts what a payer's camera would get.

The readers take what segno writes and refuse anything else: a PNG of 1-bit greyscale rows
filtered None or Up; an SVG of one path of horizontal runs (M, m, h).
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import zxingcpp

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RUN = re.compile(r"([Mmh])(-?[0-9.]+)(?: (-?[0-9.]+))?")


def read_png(data: bytes) -> np.ndarray:
    """The PNG's pixels, 0 dark and 255 light."""
    assert data[:8] == PNG_SIGNATURE
    at, compressed, header = 8, b"", None
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(
            kind + body
        )
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed += body
        at += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (1, 0, 0), header
    raw, stride = zlib.decompress(compressed), (width + 7) // 8
    rows, above = [], np.zeros(stride, np.uint8)
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        row = np.frombuffer(line[1:], np.uint8)
        assert line[0] in (0, 2), f"filter {line[0]}"
        if line[0] == 2:  # Up: each byte adds the one above it
            row = (row + above).astype(np.uint8)
        rows.append(np.unpackbits(row)[:width])
        above = row
    return (np.array(rows) * 255).astype(np.uint8)


def read_svg(data: bytes) -> np.ndarray:
    """The SVG's pixels, 0 dark and 255 light: its path's runs drawn on a light square."""
    text = data.decode()
    size = re.search(r'<svg [^>]*width="([0-9]+)"', text)
    scale = re.search(r'transform="scale\(([0-9]+)\)"', text)
    path = re.search(r' d="([^"]+)"', text)
    assert size and scale and path, text[:200]
    assert _RUN.sub("", path[1]) == "", "a path of runs only"
    modules = int(size[1]) // int(scale[1])
    grid = np.full((modules, modules), 255, np.uint8)
    x = y = 0.0
    for op, a, b in _RUN.findall(path[1]):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:  # a dark run along the row whose middle is y
            grid[int(y), int(x) : int(x + float(a))] = 0
            x += float(a)
    return np.kron(grid, np.ones((4, 4), np.uint8))


def scan(pixels: np.ndarray) -> tuple[str, str]:
    """(text, error correction level) of the one QR code in the pixels."""
    found = zxingcpp.read_barcodes(pixels, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, found
    return found[0].text, found[0].ec_level
