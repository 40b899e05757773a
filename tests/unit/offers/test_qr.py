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


def test_symbol_is_small_at_level_q() -> None:
    symbol = segno.make(make().payload, error="q", boost_error=False)
    assert symbol.version == 2  # 25 x 25 modules for a 5-letter prefix and 13 symbols


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
