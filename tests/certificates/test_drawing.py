"""The drawing shortcuts of the certificate pages, checked against what they stand for.

The QR code is drawn as merged rectangles rather than a square per module: the union of
the rectangles must be exactly the dark modules, each covered once, or a code could still
decode (error correction) while printing something else than segno made.
"""

from __future__ import annotations

import segno

from jumin.certificates import pdf

URLS = (
    "https://jumin.example.jp/certificates/verify?no=131016-2026-0000001&code=ABCDEFGH2345",
    "http://127.0.0.1/certificates/verify?no=011002-2026-1234567&code=ZZZZZZZZZZZZ",
    "https://a.example/v?no=1&code=2",
)


def _covered(rects: str, top: float) -> list[tuple[int, int]]:
    cells = []
    for line in rects.splitlines():
        x, y, w, h, op = line.split()
        assert op == "re"
        # Drawn with unit 1: whole modules, each rectangle 0.05 larger against hairlines.
        first_col, end_row = round(float(x)), round(top - float(y))
        cols, rows = round(float(w) - 0.05), round(float(h) - 0.05)
        assert abs(float(w) - 0.05 - cols) < 0.002
        assert abs(float(h) - 0.05 - rows) < 0.002
        cells += [(r, c) for r in range(end_row - rows, end_row) for c in range(first_col, first_col + cols)]
    return cells


def test_the_qr_rectangles_cover_exactly_the_dark_modules() -> None:
    for url in URLS:
        code = segno.make(url, error="m", micro=False)
        cells = _covered(pdf._module_rects(code.matrix, 0.0, 100.0, 1.0), 100.0)
        assert len(cells) == len(set(cells))  # no module twice
        dark = {(r, c) for r, row in enumerate(code.matrix) for c, bit in enumerate(row) if bit}
        assert set(cells) == dark
