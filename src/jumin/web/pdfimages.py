"""Page images of a PDF for the screen, drawn by poppler's pdftoppm.

A certificate's preview and the issued document are shown to the clerk as pictures of
their pages (browsers without a PDF viewer, headless ones included, show nothing for an
embedded PDF). Without pdftoppm the pages show their text alone and say why.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from pathlib import Path

PDFTOPPM = "pdftoppm"
_TIMEOUT_SECONDS = 20


def available() -> bool:
    return shutil.which(PDFTOPPM) is not None


def page_images(pdf: bytes, *, max_pages: int = 3, dpi: int = 110) -> list[str]:
    """``data:`` URLs of the first pages as PNG; empty when pdftoppm is missing or fails."""
    program = shutil.which(PDFTOPPM)
    if program is None:
        return []
    with tempfile.TemporaryDirectory(prefix="jumin-pages-") as tmp:
        source = Path(tmp) / "document.pdf"
        source.write_bytes(pdf)
        command = [program, "-png", "-r", str(dpi), "-f", "1", "-l", str(max_pages), str(source)]
        try:
            subprocess.run(  # noqa: S603 (a fixed program on a file we wrote)
                [*command, f"{tmp}/page"],
                check=True,
                capture_output=True,
                timeout=_TIMEOUT_SECONDS,
            )
        except (subprocess.SubprocessError, OSError):
            return []
        pages = sorted(Path(tmp).glob("page*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[-1]))
        return ["data:image/png;base64," + base64.b64encode(p.read_bytes()).decode() for p in pages]
