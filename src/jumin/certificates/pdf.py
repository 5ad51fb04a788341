"""A certificate's content drawn on A4 pages with reportlab.

Layout in two passes: rows are measured and wrapped and cut into pages first, so that
every page can print "ページ x/y" and the last page is known to have room for the
認証文, the mayor's name and the seal; then each page is drawn. Text is drawn in reading
order (label, then value, row after row), which is the order text extraction returns.

Every page carries the QR code of the verification URL, the issue number and the
verification code. The seal is vector graphics built from glyph outlines, not text, so
that it cannot be selected, copied or extracted as words of the document.

A specimen (見本, the clerk's preview before issuing) is laid out the same way, page for
page, but can never pass for a certificate: 「見本」 across every page, no QR code, no
seal, and a notice saying it is not a certificate.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import segno
from fontTools.pens.basePen import BasePen  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont as FontToolsFont  # type: ignore[import-untyped]
from reportlab import rl_config
from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.pathobject import PDFPathObject

from jumin.certificates.fonts import Face, FontSet, string_width
from jumin.certificates.layout import CertificateContent, Row

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_X = 42.0
TOP = PAGE_HEIGHT - 40.0
BODY_TOP = PAGE_HEIGHT - 100.0  # below the title, the form and the issue-number line
FOOTER_TOP = 128.0  # the QR code and the page footer live below this line
CERTIFICATION_HEIGHT = 120.0  # 認証文, date, mayor and seal on the last page
LABEL_WIDTH = 128.0
CELL_PAD = 5.0
FONT_SIZE = 9.5
SMALL_SIZE = 7.5
LINE_GAP = 4.0
NOTE_HEIGHT = 14.0
QR_SIZE = 74.0
SEAL_SIZE = 60.0
SEAL_RED = Color(0.80, 0.05, 0.08)
RULE_GREY = Color(0.35, 0.35, 0.35)

# reportlab wraps every compressed page stream in ASCII85, a 7-bit transport encoding that
# no PDF reader needs: it made each page a quarter bigger and cost a tenth of the
# rendering time in pure Python. Certificates are this process's only reportlab output.
rl_config.useA85 = 0


@dataclass(frozen=True, slots=True)
class _Line:
    """One printed line of a row: the label on the first line only."""

    label: str
    text: str
    size: float


@dataclass(frozen=True, slots=True)
class _Block:
    """A run of rows drawn in one box: the header, or (part of) one person's section."""

    heading: str
    rows: tuple[tuple[_Line, ...], ...]

    @property
    def height(self) -> float:
        return sum(sum(line.size + LINE_GAP for line in row) for row in self.rows) + 2 * CELL_PAD


def _wrap(fonts: FontSet, text: str, face: Face, size: float, width: float) -> list[str]:
    """Lines no wider than ``width``, broken between characters (Japanese has no spaces)."""
    lines: list[str] = []
    current, used = "", 0.0
    for run_face, run in fonts.runs(text, face):
        for ch in run:
            advance = pdfmetrics.stringWidth(ch, run_face.name, size)
            if current and used + advance > width:
                lines.append(current)
                current, used = ("", 0.0) if ch.isspace() else (ch, advance)
            else:
                current += ch
                used += advance
    lines.append(current)
    return lines


def _lines(fonts: FontSet, row: Row, value_width: float) -> tuple[_Line, ...]:
    size = SMALL_SIZE if row.small else FONT_SIZE
    wrapped = _wrap(fonts, row.value, fonts.mincho, size, value_width)
    return tuple(_Line(row.label if i == 0 else "", text, size) for i, text in enumerate(wrapped))


def _paginate(fonts: FontSet, content: CertificateContent) -> list[list[_Block]]:
    value_width = PAGE_WIDTH - 2 * MARGIN_X - LABEL_WIDTH - 3 * CELL_PAD
    header = _Block("", tuple(_lines(fonts, r, value_width) for r in content.header))
    pages: list[list[_Block]] = [[header]]
    room = BODY_TOP - FOOTER_TOP - header.height - 8
    for section in content.sections:
        rows = [_lines(fonts, r, value_width) for r in section.rows]
        block = _Block(section.heading, tuple(rows))
        if block.height > room and block.height <= BODY_TOP - FOOTER_TOP:
            # A person fits on a fresh page: keep them together rather than split.
            pages.append([])
            room = BODY_TOP - FOOTER_TOP
        while block.height > room:
            taken: list[tuple[_Line, ...]] = []
            for row in block.rows:
                if _Block("", (*taken, row)).height > room:
                    break
                taken.append(row)
            if taken:
                pages[-1].append(_Block(block.heading, tuple(taken)))
            rest = block.rows[len(taken) :]
            block = _Block(f"{section.heading} (続き)", rest)
            pages.append([])
            room = BODY_TOP - FOOTER_TOP
        pages[-1].append(block)
        room -= block.height + 8
    if room < CERTIFICATION_HEIGHT + NOTE_HEIGHT * len(content.notes):
        pages.append([])
    return pages


class _CanvasPen(BasePen):  # type: ignore[misc]
    """Draws a glyph outline into a reportlab path, scaled and moved into place."""

    def __init__(self, glyph_set: Any, path: Any, x: float, y: float, scale: float) -> None:
        super().__init__(glyph_set)
        self.path, self.x, self.y, self.scale = path, x, y, scale

    def _pt(self, p: tuple[float, float]) -> tuple[float, float]:
        return self.x + p[0] * self.scale, self.y + p[1] * self.scale

    def _moveTo(self, p: tuple[float, float]) -> None:  # noqa: N802 (fontTools' pen protocol)
        self.path.moveTo(*self._pt(p))

    def _lineTo(self, p: tuple[float, float]) -> None:  # noqa: N802
        self.path.lineTo(*self._pt(p))

    def _curveToOne(  # noqa: N802
        self, p1: tuple[float, float], p2: tuple[float, float], p3: tuple[float, float]
    ) -> None:
        self.path.curveTo(*self._pt(p1), *self._pt(p2), *self._pt(p3))

    def _closePath(self) -> None:  # noqa: N802
        self.path.close()


@cache
def _outline_font(path: Path) -> Any:
    return FontToolsFont(str(path))


def _glyph_outline(fonts: FontSet, ch: str, x: float, y: float, size: float) -> str:
    """The path operators of ``ch``'s outline in a ``size`` square at (x, y)."""
    face = next(f for f, _ in fonts.runs(ch, fonts.mincho))
    font = _outline_font(face.path)
    name = font.getBestCmap()[ord(ch)]
    units = font["head"].unitsPerEm
    glyph_set = font.getGlyphSet()
    path = PDFPathObject()
    # Glyphs sit on a baseline with the descender below it; lift by the descender share.
    descent = -font["hhea"].descent / units if font["hhea"].descent < 0 else 0.12
    pen = _CanvasPen(glyph_set, path, x, y + size * descent * 0.9, size / units)
    glyph_set[name].draw(pen)
    code: str = path.getCode()
    return code


@lru_cache(maxsize=256)
def _seal_glyphs(fonts: FontSet, text: str) -> str:
    """The seal's characters as fill operators inside a seal whose corner is the origin.

    A municipality's seal is the same on every certificate: its outlines are traced and
    formatted once per process, and each copy only moves them into place.
    """
    chars = list(text)
    cols = math.ceil(math.sqrt(len(chars)))
    per_column = [len(chars) // cols + (1 if c < len(chars) % cols else 0) for c in range(cols)]
    inner = SEAL_SIZE - 12
    cell_w = inner / cols
    glyph = min(cell_w, inner / max(per_column)) * 0.92
    # Seal text reads top to bottom, columns from right to left, spread over the height.
    ops: list[str] = []
    it = iter(chars)
    for col, count in enumerate(per_column):
        cell_h = inner / count
        cx = 6 + inner - (col + 1) * cell_w + (cell_w - glyph) / 2
        for row in range(count):
            cy = 6 + inner - (row + 1) * cell_h + (cell_h - glyph) / 2
            # Each glyph filled on its own (non-zero rule), as drawPath would.
            ops.append(f"{_glyph_outline(fonts, next(it), cx, cy, glyph)} f")
    return "\n".join(ops)


def _module_rects(matrix: Sequence[bytes | bytearray], left: float, top: float, unit: float) -> str:
    """The dark modules of a QR code as rectangle operators, ``top``/``left`` its corner.

    A rectangle per module made the code the costliest part of the page (about 800
    operators formatted one number at a time); a horizontal run of dark modules is one
    rectangle, and a run repeated on the rows below stretches down instead of repeating.
    """
    rects: list[tuple[int, int, int, int]] = []  # first column, end column, first row, end row
    open_runs: dict[tuple[int, int], int] = {}  # a run still growing down -> its first row
    for r, row in enumerate([*matrix, b""]):  # the empty row closes every run
        runs: set[tuple[int, int]] = set()
        c, width = 0, len(row)
        while c < width:
            if row[c]:
                start = c
                while c < width and row[c]:
                    c += 1
                runs.add((start, c))
            else:
                c += 1
        for run in [run for run in open_runs if run not in runs]:
            rects.append((*run, open_runs.pop(run), r))
        for run in runs:
            open_runs.setdefault(run, r)
    ops = []
    for c0, c1, r0, r1 in rects:
        # Slightly oversized so that neighbours leave no hairline gaps.
        w, h = (c1 - c0) * unit + 0.05, (r1 - r0) * unit + 0.05
        ops.append(f"{left + c0 * unit:.3f} {top - r1 * unit:.3f} {w:.3f} {h:.3f} re")
    return "\n".join(ops)


SPECIMEN_NOTICE = "見本: 交付前の確認用です。証明書ではありません (発行番号・QRコード・公印は交付時に印字)。"


class _Renderer:
    def __init__(self, fonts: FontSet, content: CertificateContent, *, specimen: bool = False) -> None:
        self.fonts = fonts
        self.content = content
        self.specimen = specimen
        self.buffer = io.BytesIO()
        self.canvas = Canvas(self.buffer, pagesize=A4, pageCompression=1, invariant=False)
        self.canvas.setTitle(f"{content.title} {content.issue_number}")
        self.canvas.setAuthor(content.issuer.mayor_title)
        self.canvas.setSubject(content.title)
        self.canvas.setCreator("Jumin 住民基本台帳システム")

    def text(
        self, x: float, y: float, text: str, *, face: Face | None = None, size: float = FONT_SIZE
    ) -> float:
        """Draw ``text`` from (x, y), switching to a fallback face where needed; returns the end x."""
        for run_face, run in self.fonts.runs(text, face or self.fonts.mincho):
            self.canvas.setFont(run_face.name, size)
            self.canvas.drawString(x, y, run)
            x += self.canvas.stringWidth(run, run_face.name, size)
        return x

    def centred(self, y: float, text: str, *, face: Face, size: float) -> None:
        width = string_width(self.fonts, text, face, size)
        self.text((PAGE_WIDTH - width) / 2, y, text, face=face, size=size)

    def right(self, x: float, y: float, text: str, *, size: float) -> None:
        width = string_width(self.fonts, text, self.fonts.mincho, size)
        self.text(x - width, y, text, size=size)

    def page_head(self) -> None:
        c = self.content
        self.centred(TOP - 14, c.title, face=self.fonts.gothic, size=18)
        self.centred(TOP - 32, f"（{c.form_label}）", face=self.fonts.gothic, size=9)
        self.right(PAGE_WIDTH - MARGIN_X, TOP - 52, f"発行番号 {c.issue_number}", size=8)
        self.text(MARGIN_X, TOP - 52, f"発行 {c.issuer.name}", size=8)

    def block(self, top: float, block: _Block) -> float:
        x0, x1 = MARGIN_X, PAGE_WIDTH - MARGIN_X
        bottom = top - block.height
        canvas = self.canvas
        canvas.setStrokeColor(RULE_GREY)
        canvas.setLineWidth(0.6)
        canvas.rect(x0, bottom, x1 - x0, block.height)
        canvas.line(x0 + LABEL_WIDTH, bottom, x0 + LABEL_WIDTH, top)
        y = top - CELL_PAD
        if block.heading:
            self.text(x0 + 2, top - 8, block.heading, size=6)
        for i, row in enumerate(block.rows):
            if i:
                canvas.setLineWidth(0.2)
                canvas.line(x0, y + LINE_GAP / 2, x1, y + LINE_GAP / 2)
            for line in row:
                y -= line.size
                if line.label:
                    self.text(
                        x0 + CELL_PAD + 6, y, line.label, face=self.fonts.gothic, size=min(line.size, 8.5)
                    )
                self.text(x0 + LABEL_WIDTH + CELL_PAD, y, line.text, size=line.size)
                y -= LINE_GAP
        return bottom

    def qr(self) -> None:
        qr = segno.make(self.content.verification_url, error="m", micro=False)
        border = 4
        modules = qr.symbol_size(scale=1, border=border)[0]
        unit = QR_SIZE / modules
        x0, y0 = MARGIN_X, 36.0
        canvas = self.canvas
        canvas.setFillColorRGB(1, 1, 1)
        canvas.rect(x0, y0, QR_SIZE, QR_SIZE, stroke=0, fill=1)
        canvas.setFillColorRGB(0, 0, 0)
        rects = _module_rects(qr.matrix, x0 + border * unit, y0 + QR_SIZE - border * unit, unit)
        canvas.addLiteral(f"{rects}\nf")

    def specimen_mark(self) -> None:
        """「見本」 across the page, in grey, under nothing a reader could mistake for real."""
        canvas = self.canvas
        canvas.saveState()
        canvas.setFillColor(Color(0.55, 0.55, 0.55, alpha=0.35))
        canvas.translate(PAGE_WIDTH / 2, PAGE_HEIGHT / 2)
        canvas.rotate(35)
        self.text(-150, -40, "見本", face=self.fonts.gothic, size=150)
        canvas.restoreState()

    def footer(self, page: int, pages: int) -> None:
        c = self.content
        if self.specimen:
            self.text(MARGIN_X, 96, SPECIMEN_NOTICE, size=8)
            self.right(PAGE_WIDTH - MARGIN_X, 40, f"ページ {page}/{pages}", size=8)
            return
        self.qr()
        x = MARGIN_X + QR_SIZE + 8
        notice = "この証明書は電子署名されています。真正性は下記のURL又は左のQRコードで確認できます。"
        self.text(x, 96, notice, size=7)
        self.text(x, 84, f"検証URL {c.verification_url}", size=6.5)
        self.text(x, 72, f"発行番号 {c.issue_number}", size=7)
        self.text(x, 60, f"検証コード {c.printed_code}", size=7)
        self.right(PAGE_WIDTH - MARGIN_X, 40, f"ページ {page}/{pages}", size=8)
        self.canvas.setStrokeColor(RULE_GREY)
        self.canvas.setLineWidth(0.4)
        self.canvas.line(MARGIN_X, FOOTER_TOP - 10, PAGE_WIDTH - MARGIN_X, FOOTER_TOP - 10)

    def certification(self, top: float) -> None:
        c = self.content
        y = top - 18
        self.text(MARGIN_X + 10, y, c.certification_text, size=10.5)
        y -= 24
        self.text(MARGIN_X + 10, y, c.issue_date_text, size=10.5)
        y -= 34
        name_end = self.text(MARGIN_X + 170, y, c.mayor_line, face=self.fonts.mincho, size=13)
        if not self.specimen:
            self.seal(name_end + 14, y - SEAL_SIZE / 2 + 6)

    def seal(self, x: float, y: float) -> None:
        """公印: a red square with the mayor's title + 之印, drawn from glyph outlines."""
        canvas = self.canvas
        canvas.saveState()
        canvas.setStrokeColor(SEAL_RED)
        canvas.setFillColor(SEAL_RED)
        canvas.setLineWidth(2.2)
        canvas.rect(x, y, SEAL_SIZE, SEAL_SIZE, stroke=1, fill=0)
        canvas.setLineWidth(0.8)
        canvas.rect(x + 3.2, y + 3.2, SEAL_SIZE - 6.4, SEAL_SIZE - 6.4, stroke=1, fill=0)
        canvas.translate(x, y)
        canvas.addLiteral(_seal_glyphs(self.fonts, self.content.issuer.mayor_title + "之印"))
        canvas.restoreState()

    def render(self, pages: Sequence[list[_Block]]) -> bytes:
        total = len(pages)
        for number, blocks in enumerate(pages, start=1):
            self.page_head()
            y = BODY_TOP
            for block in blocks:
                y = self.block(y, block) - 8
            if number == total:
                for note in self.content.notes:
                    self.text(MARGIN_X + 4, y - 10, note, size=8)
                    y -= NOTE_HEIGHT
                self.certification(min(y, FOOTER_TOP + CERTIFICATION_HEIGHT))
            self.footer(number, total)
            if self.specimen:
                self.specimen_mark()
            self.canvas.showPage()
        self.canvas.save()
        return self.buffer.getvalue()


def render_pdf(fonts: FontSet, content: CertificateContent, *, specimen: bool = False) -> tuple[bytes, int]:
    """The unsigned PDF and its page count; ``specimen``: the preview (見本) instead."""
    for text in content.texts():
        fonts.check(text)
    pages = _paginate(fonts, content)
    return _Renderer(fonts, content, specimen=specimen).render(pages), len(pages)
