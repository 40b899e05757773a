"""QR codes for in-store offer codes: payload format and a well-formed, scalable SVG."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import pytest
import segno

from functions.campaigns.codes import InvalidCode, generate_codes
from functions.offers.qr import PAYLOAD_PREFIX, QrCode, qr_for_code

SVG = "{http://www.w3.org/2000/svg}"
EXPIRES = datetime(2027, 4, 1, tzinfo=timezone(timedelta(hours=9)))
CODE = generate_codes("TRAIL", 1, length=13, rng=random.Random(1))[0]


def make(
    code: str = CODE, offer_id: str = "TRAIL10", expires_at: datetime | None = EXPIRES
) -> QrCode:
    return qr_for_code(code, offer_id=offer_id, expires_at=expires_at)


def test_payload_is_the_versioned_upper_case_code() -> None:
    qr = make(CODE.lower())
    assert qr.payload == f"REBATES1:{CODE}"
    assert PAYLOAD_PREFIX == "REBATES1:"
    # Everything in it is in QR's alphanumeric set, hence the compact encoding.
    assert re.fullmatch(r"[0-9A-Z $%*+\-./:]+", qr.payload)
    assert segno.make(qr.payload, error="q").mode == "alphanumeric"


def drawn_modules(svg: str) -> list[list[bool]]:
    """The symbol's modules (True: dark) as the SVG draws them, without the quiet zone.

    segno strokes each run of dark modules as one horizontal line through the middle of
    its row: ``M x y`` starts, ``m dx dy`` moves, ``h n`` draws n modules.
    """
    root = ET.fromstring(svg)
    side = int(root.attrib["viewBox"].split()[2])
    grid = [[False] * side for _ in range(side)]
    (dark,) = [path for path in root.findall(f"{SVG}path") if path.attrib.get("stroke")]
    x = y = 0.0
    for command, arguments in re.findall(r"([A-Za-z])([^A-Za-z]*)", dark.attrib["d"]):
        numbers = [float(number) for number in arguments.split()]
        if command == "M":
            x, y = numbers
        elif command == "m":
            x, y = x + numbers[0], y + numbers[1]
        elif command == "h":
            for column in range(int(x), int(x + numbers[0])):
                grid[int(y)][column] = True
            x += numbers[0]
        else:
            raise AssertionError(f"unexpected path command {command!r}")
    border = 4
    inside = range(border, side - border)
    assert not any(
        grid[r][c] for r in range(side) for c in range(side) if not (r in inside and c in inside)
    ), "the quiet zone must stay light"
    return [row[border : side - border] for row in grid[border : side - border]]


_LEVELS = {0b01: "L", 0b00: "M", 0b11: "Q", 0b10: "H"}
_FORMAT_MASK = 0b101010000010010


def format_information(modules: list[list[bool]]) -> tuple[str, int]:
    """The error correction level and mask pattern the symbol's format bits announce.

    ISO/IEC 18004 places the 15 format bits twice (beside the top-left finder, and split
    between the other two); both copies must agree and be a valid BCH(15,5) codeword.
    """
    size = len(modules)

    def bits(*cells: tuple[int, int]) -> int:
        return sum(int(modules[row][column]) << i for i, (row, column) in enumerate(cells))

    first = bits(
        *[(i, 8) for i in range(6)],
        (7, 8),
        (8, 8),
        (8, 7),
        *[(8, 14 - i) for i in range(9, 15)],
    )
    second = bits(
        *[(8, size - 1 - i) for i in range(8)], *[(size - 15 + i, 8) for i in range(8, 15)]
    )
    assert first == second, "the two copies of the format information differ"
    data = (first ^ _FORMAT_MASK) >> 10
    remainder = data
    for _ in range(10):
        remainder = (remainder << 1) ^ ((remainder >> 9) * 0b10100110111)
    assert ((data << 10) | remainder) ^ _FORMAT_MASK == first, "not a format codeword"
    return _LEVELS[data >> 3], data & 0b111


def test_symbol_is_small_at_level_q() -> None:
    qr = make()
    modules = drawn_modules(qr.svg)
    # Version 2 (25 x 25 modules) for a 5-letter prefix and 13 symbols.
    assert len(modules) == 25 and all(len(row) == 25 for row in modules)
    level, mask = format_information(modules)
    assert level in {"Q", "H"}  # at least Q; H only where it fits the same version
    # What is drawn is the payload's symbol at that level and mask, module for module.
    expected = segno.make(qr.payload, error=level, mask=mask, version=2, boost_error=False)
    assert modules == [[bool(module) for module in row] for row in expected.matrix]


def test_svg_is_inline_scalable_well_formed_xml_with_a_path() -> None:
    svg = make().svg
    assert svg.startswith("<svg ") and not svg.startswith("<?xml")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert "width" not in root.attrib and "height" not in root.attrib
    # 25 modules and a 4-module quiet zone each side.
    assert root.attrib["viewBox"] == "0 0 33 33"
    paths = root.findall(f"{SVG}path")
    assert paths and all(path.attrib["d"] for path in paths)
    # A white background, so it scans on a dark page too.
    assert any(path.attrib.get("fill") == "#fff" for path in paths)


def test_svg_describes_the_code_offer_and_expiry_escaped() -> None:
    root = ET.fromstring(make(offer_id="A&B<1>").svg)
    assert root.findtext(f"{SVG}title") == f"Offer code {CODE}"
    assert root.findtext(f"{SVG}desc") == "Offer A&B<1>, valid until 2027-03-31T15:00:00Z"
    undated = ET.fromstring(make(expires_at=None).svg)
    assert undated.findtext(f"{SVG}desc") == "Offer TRAIL10"


def test_output_is_deterministic() -> None:
    assert make() == make()
    assert make(CODE.lower()) == make(CODE)
    assert make().svg != make(generate_codes("TRAIL", 1, length=13)[0]).svg


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidCode):
        make("TRAIL 1")
    with pytest.raises(ValueError, match="offset"):
        make(expires_at=datetime(2027, 4, 1))  # naive
    make(expires_at=datetime(2027, 4, 1, tzinfo=UTC))
