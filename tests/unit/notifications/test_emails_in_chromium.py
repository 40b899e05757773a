"""Every email and page drawn by headless Chromium, as a person would see it.

Each document is screenshotted once (two at a time) and checked with Pillow: there is
text in the content column, nothing spills past the 600 px column, the QR code shows
in the emails that carry one and nowhere else, and Japanese glyphs are real glyphs, not
the identical boxes ("tofu") a missing font draws. A mail client shows inline images by
``cid:``, which a file URL cannot resolve, so the screenshots get the same PNGs as
``data:`` URIs.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from functions.core.vocabulary import Locale
from functions.notifications.messages import TEMPLATES
from functions.notifications.rendering import RenderedEmail, render_email, render_page
from tests.unit.notifications.content_samples import UNSUBSCRIBE_URL, message

WIDTH, HEIGHT = 800, 1000
# The email's column is 600 px wide and centred; the page's, 560.
COLUMN = (100, 700)
PAGE_BACKGROUND = (0xF3, 0xF4, 0xF6)
LOCALES: tuple[Locale, ...] = ("ja", "en")
QR_EMAILS = {"code_issued", "purchase_thank_you", "next_purchase_code"}
ACTION = "https://api.example.com/v1/unsubscribe?token=v1.abc"

# Six distinct Japanese characters drawn large in cells of their own, and six
# private-use characters no font has: those are drawn as one identical box (or nothing).
GLYPHS = "申請承認円様"
NO_GLYPHS = "\ue000\ue001\ue002\ue003\ue004\ue005"
CELL = 80
GLYPH_PAGE = f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><style>
body {{ margin: 0; background: #fff; }}
div {{ display: flex; }}
span {{ display: block; width: {CELL}px; height: {CELL}px; font-size: 64px; line-height: {CELL}px;
  text-align: center; overflow: hidden; color: #000;
  font-family: 'Hiragino Sans','Noto Sans JP','Noto Sans CJK JP',Meiryo,sans-serif; }}
</style></head><body>
<div>{"".join(f"<span>{c}</span>" for c in GLYPHS)}</div>
<div>{"".join(f"<span>{c}</span>" for c in NO_GLYPHS)}</div>
</body></html>
"""


def browser() -> str:
    found = shutil.which("chromium-headless-shell") or "/usr/bin/chromium-headless-shell"
    if not os.access(found, os.X_OK):
        pytest.fail(
            "chromium-headless-shell is not installed: run `make browser` "
            "(a dependency of `make test`) to install it with the CJK fonts"
        )
    fonts = subprocess.run(
        ["fc-list", ":lang=ja", "family"], capture_output=True, text=True, check=False
    )
    if not fonts.stdout.strip():
        pytest.fail("no Japanese font is installed: run `make browser` (fonts-noto-cjk)")
    return found


@dataclass(frozen=True)
class Shot:
    name: str
    document: Path
    picture: Path
    profile: Path


def take(binary: str, shot: Shot) -> Path:
    done = subprocess.run(
        [
            binary,
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--force-device-scale-factor=1",
            f"--user-data-dir={shot.profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={shot.picture}",
            shot.document.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not shot.picture.exists():
        pytest.fail(f"no screenshot of {shot.name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return shot.picture


def with_data_uris(email: RenderedEmail) -> str:
    html = email.html
    for image in email.images:
        data = base64.b64encode(image.png).decode("ascii")
        html = html.replace(f"cid:{image.content_id}", f"data:image/png;base64,{data}")
    return html


def documents() -> Iterator[tuple[str, str]]:
    for template in TEMPLATES:
        built = message(template)
        url = UNSUBSCRIBE_URL if built.purpose == "marketing" else None
        for locale in LOCALES:
            email = render_email(built, locale, unsubscribe_url=url)
            yield f"{template}-{locale}", with_data_uris(email)
    yield "unsubscribe_confirm-ja", render_page("unsubscribe_confirm", "ja", action_url=ACTION)
    yield "unsubscribe_confirm-en", render_page("unsubscribe_confirm", "en", action_url=ACTION)
    yield "unsubscribe_done-ja", render_page("unsubscribe_done", "ja")
    yield "unsubscribe_invalid-both", render_page("unsubscribe_invalid", None)
    yield "glyphs", GLYPH_PAGE


EMAILS = [f"{template}-{locale}" for template in TEMPLATES for locale in LOCALES]
PAGES = [
    "unsubscribe_confirm-ja",
    "unsubscribe_confirm-en",
    "unsubscribe_done-ja",
    "unsubscribe_invalid-both",
]


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image.Image]:
    binary = browser()
    root = tmp_path_factory.mktemp("screenshots")
    shots = []
    for name, html in documents():
        document = root / f"{name}.html"
        document.write_text(html, encoding="utf-8")
        shots.append(Shot(name, document, root / f"{name}.png", root / f"profile-{name}"))
    # Two at a time: enough to overlap Chromium's start-up, gentle on a shared machine.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pictures = list(pool.map(lambda shot: take(binary, shot), shots))
    loaded = {}
    for shot, picture in zip(shots, pictures, strict=True):
        with Image.open(picture) as image:
            loaded[shot.name] = image.convert("RGB")
    return loaded


def ink(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels dark enough to be text, lines or a QR module."""
    grey = image.crop(box).convert("L")
    return sum(count for level, count in enumerate(grey.histogram()) if level < 140)


def pure_black(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Pixels whose every channel is (nearly) 0: only the QR code is drawn in #000; text is
    #1f2937 or lighter, even where anti-aliased."""
    red, green, blue = image.crop(box).split()
    brightest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return sum(brightest.histogram()[:8])


@pytest.mark.parametrize("name", EMAILS + PAGES)
def test_the_content_column_has_text(screenshots: dict[str, Image.Image], name: str) -> None:
    image = screenshots[name]
    assert image.size == (WIDTH, HEIGHT)
    left, right = COLUMN
    # A heading and a few lines of body text are several thousand dark pixels; a blank
    # or broken page (an unrendered template, an unreadable file) has none.
    assert ink(image, (left, 0, right, HEIGHT)) > 3000, name
    # And nothing is drawn outside the column: no table wider than the layout.
    assert ink(image, (0, 0, left - 12, HEIGHT)) == 0, name
    assert ink(image, (right + 12, 0, WIDTH, HEIGHT)) == 0, name
    edge = image.crop((WIDTH - 8, 0, WIDTH, HEIGHT // 2))
    assert [colour for _, colour in edge.getcolors() or []] == [PAGE_BACKGROUND], name


@pytest.mark.parametrize("name", EMAILS)
def test_the_qr_code_shows_where_the_email_carries_one(
    screenshots: dict[str, Image.Image], name: str
) -> None:
    template = name.rsplit("-", 1)[0]
    black = pure_black(screenshots[name], (COLUMN[0], 0, COLUMN[1], HEIGHT))
    if template in QR_EMAILS:
        # A 198 px symbol is roughly half dark modules: well over 10,000 black pixels.
        assert black > 10000, f"{name}: no QR code drawn"
    else:
        assert black == 0, f"{name}: something black where no QR belongs"


def test_japanese_is_drawn_with_real_glyphs(screenshots: dict[str, Image.Image]) -> None:
    image = screenshots["glyphs"]

    def cells(row: int) -> list[bytes]:
        return [
            image.crop((i * CELL, row * CELL, (i + 1) * CELL, (row + 1) * CELL)).tobytes()
            for i in range(len(GLYPHS))
        ]

    japanese, missing = cells(0), cells(1)
    # Characters no font has come out alike: that is what tofu looks like to this check.
    assert len(set(missing)) == 1
    # Six different kanji and kana drawn by a real font are six different pictures.
    assert len(set(japanese)) == len(GLYPHS)
    assert not set(japanese) & set(missing)
    for cell in range(len(GLYPHS)):
        assert ink(image, (cell * CELL, 0, (cell + 1) * CELL, CELL)) > 200
