"""Embedded Japanese fonts, and what happens to a character the font lacks.

Certificates embed IPAex明朝 and IPAexゴシック (Debian ``fonts-ipaexfont``): an embedded
TrueType font extracts exactly and looks the same in every viewer, which reportlab's
built-in CID fonts do not (STACK.md).

IPAex covers JIS X 0213 but not every character a name can hold: 𠮷 (U+20BB7) and many
other 人名 characters are outside it, and a missing glyph prints as glyph 0 — an empty
box, or nothing. A certificate that silently drops part of a name certifies something
the register does not say, so this module never lets that happen. It could either
refuse or fall back; it falls back, and refuses only when no installed font can print
the character:

- The register keeps names as given, and a resident with 𠮷 in their name needs a
  住民票の写し as much as anyone. Refusing would send them away for a font problem.
- IPAmj明朝 (Debian ``fonts-ipamj-mincho``) is the font of the 文字情報基盤 (MJ) that
  government systems standardise on for names: about 58,000 characters, 𠮷 included.
  A character missing from IPAex is drawn from it, embedded like the primary font, so it
  still extracts as itself.
- When no font has it (or the fallback is not installed), issuance stops with an error
  that names the character and its code point, so the clerk knows exactly why and an
  operator knows exactly what to install.
- Ideographic variation sequences (a base character + U+E0100…) are refused for now:
  reportlab draws by code point and cannot select a variant glyph, and drawing the base
  glyph instead would print a different 字形 than the register holds.

reportlab (≤ 4.x) writes characters outside the BMP into the ToUnicode map as five hex
digits, which PDF readers truncate (𠮷 extracts as U+20BB). ``_to_unicode_cmap`` below
writes them as UTF-16 surrogate pairs, as the PDF specification requires; it replaces
reportlab's function once, at font registration.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fontTools.ttLib import TTFont as FontToolsFont  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics, ttfonts

from jumin.certificates.domain import SigningUnavailable, UnprintableCharacter

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
MINCHO_FILE = "ipaexm.ttf"
GOTHIC_FILE = "ipaexg.ttf"
FALLBACK_FILES = ("ipamjm.ttf",)

MINCHO = "JuminMincho"
GOTHIC = "JuminGothic"


class FontMissing(SigningUnavailable):
    type_slug = "certificate-font-missing"
    title = "証明書用のフォントがありません"


def _utf16_hex(code_point: int) -> str:
    if code_point <= 0xFFFF:
        return f"{code_point:04X}"
    offset = code_point - 0x10000
    return f"{0xD800 + (offset >> 10):04X}{0xDC00 + (offset & 0x3FF):04X}"


def _to_unicode_cmap(fontname: str, subset: Sequence[int]) -> str:
    """reportlab's makeToUnicodeCMap, with non-BMP characters as surrogate pairs."""
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo",
        f"<< /Registry ({fontname})",
        f"/Ordering ({fontname})",
        "/Supplement 0",
        ">> def",
        f"/CMapName /{fontname} def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        f"<00> <{len(subset) - 1:02X}>",
        "endcodespacerange",
        f"{len(subset)} beginbfchar",
        *(f"<{i:02X}> <{_utf16_hex(v)}>" for i, v in enumerate(subset)),
        "endbfchar",
        "endcmap",
        "CMapName currentdict /CMap defineresource pop",
        "end",
        "end",
    ]
    return "\n".join(lines)


@cache
def _font_index() -> dict[str, Path]:
    """Font files by file name, found once under the system font folders."""
    found: dict[str, Path] = {}
    for root in FONT_DIRS:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                found.setdefault(name.lower(), Path(folder) / name)
    return found


def find_font(file_name: str) -> Path | None:
    return _font_index().get(file_name.lower())


@cache
def _coverage(path: Path) -> frozenset[int]:
    font = FontToolsFont(str(path), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def _is_variation_selector(code: int) -> bool:
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


@dataclass(frozen=True, slots=True)
class Face:
    name: str  # the name registered with reportlab
    path: Path
    # Held by the face: every character of every certificate is looked up here, several
    # times, and a lookup through the font's path cost more than the rest of the choice.
    coverage: frozenset[int] = field(repr=False, compare=False)

    def covers(self, ch: str) -> bool:
        return ord(ch) in self.coverage


@dataclass(frozen=True, slots=True)
class FontSet:
    """The faces a certificate draws with: Mincho for text, Gothic for headings, fallbacks."""

    mincho: Face
    gothic: Face
    fallbacks: tuple[Face, ...]

    def runs(self, text: str, face: Face) -> Iterator[tuple[Face, str]]:
        """``text`` cut into runs that one face can draw each; refuses what none can."""
        current: Face | None = None
        run: list[str] = []
        for ch in text:
            chosen = self._face_for(ch, face)
            if chosen is not current and run:
                assert current is not None
                yield current, "".join(run)
                run = []
            current = chosen
            run.append(ch)
        if run and current is not None:
            yield current, "".join(run)

    def _face_for(self, ch: str, preferred: Face) -> Face:
        code = ord(ch)
        if _is_variation_selector(code):
            raise UnprintableCharacter(
                f"異体字セレクタ (U+{code:04X}) 付きの文字は現在の証明書では字形を指定して印字できません。"
                "窓口で記載内容を確認のうえ、手書きの証明書等で対応してください。"
            )
        if code in preferred.coverage:
            return preferred
        for face in (self.mincho, *self.fallbacks):
            if code in face.coverage:
                return face
        if ch.isspace():
            return preferred
        hint = (
            "外字フォント (IPAmj明朝: fonts-ipamj-mincho) がインストールされていません。"
            if not self.fallbacks
            else "インストールされたどのフォントにもこの文字がありません。"
        )
        raise UnprintableCharacter(
            f"文字「{ch}」(U+{ord(ch):04X}) を印字できるフォントがないため、証明書を発行できません。{hint}"
        )

    def check(self, text: str) -> None:
        """Refuse now, before anything is recorded, if ``text`` cannot be printed."""
        for _ in self.runs(text, self.mincho):
            pass


class _TableView:
    """A table of a loaded font file, read in place: slicing copies the slice only."""

    __slots__ = ("_view",)

    def __init__(self, view: memoryview) -> None:
        self._view = view

    def __getitem__(self, index: slice) -> bytes:
        return self._view[index].tobytes()


class _InPlaceFace(ttfonts.TTFontFace):
    """reportlab's TrueType face, without a copy of the whole glyph table for each subset.

    Writing a subset, reportlab copies every table it reads out of the font file, ``glyf``
    included: 7 MB of IPAex明朝 and 45 MB of IPAmj明朝, for each font of each document.
    That was a sixth of the time of an ordinary certificate and tripled the time of one
    with a 外字. Its subsetting only ever slices ``glyf`` (a glyph at a time) and ``post``
    (its header), so those two are handed out as views; the glyphs written are the same.
    """

    _READ_IN_PLACE = frozenset({"glyf", "post"})

    def get_table(self, tag: str) -> Any:
        if tag not in self._READ_IN_PLACE:
            return super().get_table(tag)  # type: ignore[no-untyped-call]
        pos, length = self.get_table_pos(tag)
        data: bytes = self._ttf_data  # type: ignore[attr-defined]  # the file as read, not in the stubs
        return _TableView(memoryview(data)[pos : pos + length])


_lock = threading.Lock()


def _register(face: Face) -> None:
    with _lock:
        if face.name not in pdfmetrics.getRegisteredFontNames():
            font = ttfonts.TTFont(face.name, str(face.path))
            # reportlab makes the face inside TTFont(); only get_table differs, not the state.
            font.face.__class__ = _InPlaceFace
            pdfmetrics.registerFont(font)


def load_fonts(*, use_fallbacks: bool = True) -> FontSet:
    """The certificate fonts, registered with reportlab; a clear error when IPAex is missing."""
    mincho, gothic = find_font(MINCHO_FILE), find_font(GOTHIC_FILE)
    if mincho is None or gothic is None:
        missing = MINCHO_FILE if mincho is None else GOTHIC_FILE
        raise FontMissing(
            f"証明書用フォント {missing} (IPAexフォント) が {', '.join(map(str, FONT_DIRS))} にありません。"
            "Debian/Ubuntu では `apt-get install fonts-ipaexfont` でインストールしてください。"
        )
    # reportlab calls its module-level function by name when it writes a font subset.
    ttfonts.makeToUnicodeCMap = _to_unicode_cmap
    fallbacks = []
    if use_fallbacks:
        for i, file_name in enumerate(FALLBACK_FILES):
            path = find_font(file_name)
            if path is not None:
                fallbacks.append(Face(f"JuminFallback{i}", path, _coverage(path)))
    fonts = FontSet(
        Face(MINCHO, mincho, _coverage(mincho)), Face(GOTHIC, gothic, _coverage(gothic)), tuple(fallbacks)
    )
    for face in (fonts.mincho, fonts.gothic, *fonts.fallbacks):
        _register(face)
    return fonts


def string_width(fonts: FontSet, text: str, face: Face, size: float) -> float:
    return sum(pdfmetrics.stringWidth(run, f.name, size) for f, run in fonts.runs(text, face))
