"""EMVCo merchant-presented QR payloads: what Billfold writes it reads back; a single character
changed anywhere is refused by the CRC; every other fault is refused naming its field."""

from __future__ import annotations

import string
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.merchants import qr
from billfold.platform.errors import ValidationFailed
from tests.merchants.scan import read_png, read_svg, scan

ANS = st.text(alphabet=string.ascii_letters + string.digits + " .-&'", min_size=1)
payloads = st.builds(
    qr.Payload,
    merchant_id=st.uuids(),
    mcc=st.from_regex(r"\A[0-9]{4}\Z"),
    currency=st.just("USD"),
    country=st.from_regex(r"\A[A-Z]{2}\Z"),
    name=ANS.map(lambda s: s[: qr.NAME_MAX].strip() or "x"),
    city=ANS.map(lambda s: s[: qr.CITY_MAX].strip() or "x"),
)
dynamic = st.tuples(st.integers(1, 10**11), st.uuids().map(str))


def test_the_crc_is_crc16_ccitt_false() -> None:
    assert qr.crc16("123456789") == "29B1"


@given(payloads, st.none() | dynamic)
def test_what_is_written_is_read_back(payload: qr.Payload, sold: tuple[int, str] | None) -> None:
    if sold is not None:
        payload = qr.Payload(**{**_fields(payload), "amount_minor": sold[0], "session_id": sold[1]})
    text = qr.encode(payload)
    assert qr.decode(text) == payload
    assert text.startswith("000201010212" if sold else "000201010211")


@given(payloads, st.none() | dynamic, st.data())
def test_every_single_character_changed_is_refused(
    payload: qr.Payload, sold: tuple[int, str] | None, data: st.DataObject
) -> None:
    if sold is not None:
        payload = qr.Payload(**{**_fields(payload), "amount_minor": sold[0], "session_id": sold[1]})
    text = qr.encode(payload)
    at = data.draw(st.integers(0, len(text) - 1))
    other = data.draw(st.sampled_from(string.printable[:95]).filter(lambda c: c != text[at]))
    changed = text[:at] + other + text[at + 1 :]
    if changed[-4:].upper() == text[-4:] and changed[:-4] == text[:-4]:
        return  # a hex digit's case: the same CRC
    with pytest.raises(ValidationFailed):
        qr.decode(changed)


def signed(body: str) -> str:
    """`body` with a correct CRC: what a generator of another network, or a forger, sends."""
    return body + "6304" + qr.crc16(body + "6304")


MERCHANT = str(uuid.uuid4())
ACCOUNT = f"0012dev.billfold01{len(MERCHANT):02d}{MERCHANT}"
TAIL = "5204581253038405802US5904Cafe6004Reno"
HEAD = f"00020101021126{len(ACCOUNT):02d}{ACCOUNT}{TAIL}"
# Another network's account template: a GUID not Billfold's.
FOREIGN = f"0011com.example01{len(MERCHANT):02d}{MERCHANT}"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (HEAD + "6304ABCD", "qr_payload.63"),
        (HEAD, "qr_payload.63"),
        (signed(f"00020101021126{len(FOREIGN):02d}{FOREIGN}{TAIL}"), "qr_payload.26"),
        (signed(HEAD.replace("52045812", "")), "qr_payload.52"),
        (signed(HEAD.replace("5303840", "5303978")), "qr_payload.53"),
        (signed(HEAD + "540512.50"), "qr_payload.54"),
        (signed(HEAD.replace("010211", "010212")), "qr_payload.54"),
        (signed(HEAD.replace("010211", "010213")), "qr_payload.01"),
        (signed(HEAD + "5904Cafe"), "qr_payload.59"),
        (signed(HEAD.replace("6004Reno", "6009Reno")), "qr_payload.60"),
        ("héllo", "qr_payload"),
    ],
)
def test_a_faulty_payload_is_a_422_naming_its_field(text: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        qr.decode(text)
    assert refused.value.fields["field"] == field
    assert refused.value.status == 422


def test_a_good_static_payload_by_hand_is_read() -> None:
    read = qr.decode(signed(HEAD))
    assert (str(read.merchant_id), read.mcc, read.name, read.city) == (
        MERCHANT,
        "5812",
        "Cafe",
        "Reno",
    )
    assert read.amount_minor is None and not read.dynamic


def test_a_dynamic_amount_is_written_with_the_currencys_places() -> None:
    payload = qr.Payload(uuid.uuid4(), "5814", "USD", "US", "Cafe", "Oakland", 1005, "s1")
    assert "540510.05" in qr.encode(payload)
    assert qr.decode(qr.encode(payload)).amount_minor == 1005


@settings(max_examples=25, deadline=None)
@given(payloads, st.none() | dynamic, st.sampled_from(sorted(qr.IMAGE_TYPES)))
def test_a_drawn_code_scans_back_to_its_payload_at_level_m(
    payload: qr.Payload, sold: tuple[int, str] | None, kind: str
) -> None:
    """A real decoder (zxing-cpp) reads the PNG's or SVG's pixels: the text is the payload's,
    at error correction M, and it decodes to the same payload."""
    if sold is not None:
        payload = qr.Payload(**{**_fields(payload), "amount_minor": sold[0], "session_id": sold[1]})
    text = qr.encode(payload)
    pixels = (read_png if kind == "png" else read_svg)(qr.image(text, kind))
    assert scan(pixels) == (text, "M")
    assert qr.decode(text) == payload


def test_an_image_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="gif"):
        qr.image("000201", "gif")


def _fields(payload: qr.Payload) -> dict[str, object]:
    return {name: getattr(payload, name) for name in qr.Payload.__slots__}
