"""The NACHA parser and writer: the moov-io corpus, round trips, a large returns file, fuzzing."""

from __future__ import annotations

import dataclasses
import inspect
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billfold.funding.ach import (
    AchFile,
    Addenda,
    Batch,
    EntryDetail,
    NachaError,
    ReadOptions,
    check_digit,
    make_returns_file,
    parse,
    routing_checksum_ok,
    split_records,
    trace_number,
    write,
)

# moov-io/ach's test files (Apache-2.0; see testdata/nacha/README.md and LICENSE), kept in the
# repository so that a clean clone tests against them.
CORPUS = Path(__file__).parent / "testdata/nacha"
INVALID_NAME = re.compile(r"(?i:invalid)|no-|short-line|long-line|Err")
PADDING = "9" * 94

# Files named valid that break a NACHA rule a reader can still represent, with the fields of the
# findings they parse with, in order (docs/funding.md draws the line between finding and refusal).
WITH_FINDINGS = {
    "test/testdata/20110805A.ach": ("batch_count",),  # control says 5 batches, file has 4
    "test/testdata/20180713-IAT.ach": ("transaction_code",),  # debit 27 in a credits-only batch
    "test/testdata/20180716-IAT-A17.ach": ("transaction_code",),  # the same
    "test/testdata/20180716-IAT-A17-A18.ach": ("transaction_code",),  # the same
    "test/testdata/adv-noFileControl.ach": ("record_type",),  # ends without a file control
    # The file control says credits of 600000; the batches sum to 600078.
    "test/testdata/flattenADVBatchesMultipleBatchHeaders.ach": ("total_credit",),
    "test/testdata/iat-mixedDebitCredit.ach": ("addenda_sequence",),  # two 17 addenda both 0002
    "test/testdata/moov-ids.ach": ("entry_hash",),  # file control entry hash is 9999999999
    "test/testdata/nonascii.ach": ("block_count", "entry_addenda_count"),  # 1 block, 1 entry
    "test/testdata/nonascii-utf8.ach": ("block_count", "entry_addenda_count"),  # the same
    "test/testdata/shr-credit.ach": (  # one batch cut from a 665-batch file, under its control
        "batch_count",
        "block_count",
        "entry_addenda_count",
        "entry_hash",
        "total_debit",
        "total_credit",
    ),
    "test/testdata/skip-validation.ach": (  # blank destination; every number zero
        "immediate_destination",
        "trace_number",
        "batch_number",
    ),
    "test/testdata/txp-credit.ach": ("effective_entry_date",),  # header fields shifted by two
    "test/testdata/txp-debit.ach": (  # addenda fields shifted by two
        "addenda_sequence",
        "entry_sequence",
        "block_count",
    ),
    # Read with the options below, a finding where each was used. The fragment's batches are
    # numbered 188, then 85.
    "test/testdata/bh-ed-ad-bh-ed-ad-ed-ad.ach": ("record_type", "batch_number"),
    "test/testdata/return-PPD-custom-reason-code.ach": ("return_code",),
}
# Two files named valid that moov-io/ach reads only with reader options (its ValidateOpts), and the
# ReadOptions that read them here; without them they are refused, like their twins named invalid.
READ_WITH_OPTIONS = {
    # A fragment: no file header, batch controls or file control (moov-io: AllowMissingFileHeader
    # and AllowMissingFileControl; its reader closes a batch without control unasked).
    "test/testdata/bh-ed-ad-bh-ed-ad-ed-ad.ach": ReadOptions(
        allow_missing_file_header=True, allow_missing_batch_control=True
    ),
    # A return with R97, a bank's own code outside NACHA's table (moov-io: CustomReturnCodes).
    "test/testdata/return-PPD-custom-reason-code.ach": ReadOptions(custom_return_codes=True),
}
# The twin named invalid of each, breaking the same rule: a fragment laid out alike (batch
# header, entry, addenda, twice); the valid iat-addenda99.ach with R96 for R01.
TWINS = {
    "test/testdata/bh-ed-ad-bh-ed-ad-ed-ad.ach": "test/testdata/return-no-batch-controls.ach",
    "test/testdata/return-PPD-custom-reason-code.ach": "test/testdata/iat-invalidAddenda99.ach",
}
STRICT = ReadOptions()
LENIENT = ReadOptions(**{option.name: True for option in dataclasses.fields(ReadOptions)})
# Valid PPD files that do not come back byte for byte from write(parse(file)), and why.
NOT_REWRITTEN_AS_READ = {
    "examples/testdata/contested-return.ach": "effective date 000000 reads as None, written blank",
    "test/testdata/extended-ascii.ach": "the writer refuses the non-ASCII 'ż' in a name",
}


def _name(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


def _options(path: str) -> ReadOptions:
    return READ_WITH_OPTIONS.get(path, STRICT)


ALL_FILES = sorted(CORPUS.glob("**/*.ach"))
VALID = [p for p in ALL_FILES if not INVALID_NAME.search(p.name)]
REFUSED = [p for p in ALL_FILES if INVALID_NAME.search(p.name)]
# Written back as read: what a finding reports, the writer puts right, so those files differ.
PPD_READ = [
    p
    for p in VALID
    if _name(p) not in WITH_FINDINGS
    and {b.sec_code for b in parse(p.read_bytes()).batches} == {"PPD"}
]
PPD_REWRITTEN = [p for p in PPD_READ if _name(p) not in NOT_REWRITTEN_AS_READ]


def _records(data: str | bytes) -> list[str]:
    """A file's records, whatever its line endings, without block padding."""
    return [record for record in split_records(data) if record != PADDING]


def _entry(code: int, rdfi8: str, sequence: int, amount: int, *addenda: Addenda) -> EntryDetail:
    return EntryDetail(
        transaction_code=code,
        rdfi_routing=rdfi8 + check_digit(rdfi8),
        account_number=f"00{sequence:09d}5678",
        amount_minor=amount,
        individual_id=f"CUST{sequence}",
        individual_name=f"RECEIVER {sequence}",
        discretionary_data="",
        trace_number=trace_number("07640125", sequence),
        addenda=addenda,
    )


def _batch(number: int, entries: tuple[EntryDetail, ...], service_class: int = 200) -> Batch:
    return Batch(
        service_class_code=service_class,
        company_name="BILLFOLD INC",
        company_discretionary_data="",
        company_id="1234567890",
        sec_code="PPD",
        entry_description="PAYOUT",
        descriptive_date="",
        effective_entry_date=date(2025, 3, 4),
        settlement_date="",
        originator_status_code="1",
        odfi_id="07640125",
        batch_number=number,
        entries=entries,
    )


def _file(*batches: Batch) -> AchFile:
    return AchFile(
        immediate_destination="076401251",
        immediate_origin="1234567890",
        creation_date=date(2025, 3, 3),
        creation_time="1542",
        file_id_modifier="A",
        destination_name="FIRST BANK",
        origin_name="BILLFOLD INC",
        reference_code="",
        batches=batches,
    )


# The sequence numbers that close the sample's three 05 addenda: addenda, then entry sequence.
NUMBERED = ("00010000001", "00010000003", "00020000003")


def _payment_addenda(text: str, numbers: str) -> Addenda:
    return Addenda("05", f"705{text:<80}{numbers}")


def _sample(numbers: tuple[str, ...] = NUMBERED, name: str = "RECEIVER 2") -> AchFile:
    credits = (
        _entry(22, "12104288", 1, 12_345, _payment_addenda("INVOICE 1", numbers[0])),
        dataclasses.replace(_entry(32, "23138010", 2, 100), individual_name=name),
    )
    paid = (_payment_addenda("A", numbers[1]), _payment_addenda("B", numbers[2]))
    debits = (_entry(27, "03130001", 3, 5_000, *paid), _entry(28, "09100001", 4, 0))
    return _file(_batch(1, credits, 220), _batch(2, debits, 225))


def _originated(batches: int, per_batch: int) -> AchFile:
    rdfis = ("12104288", "23138010", "03130001", "09100001")
    return _file(
        *(
            _batch(
                b + 1,
                tuple(
                    _entry(27 if n % 3 else 22, rdfis[n % 4], b * per_batch + n + 1, 100 + n)
                    for n in range(per_batch)
                ),
            )
            for b in range(batches)
        )
    )


@pytest.mark.parametrize("path", VALID, ids=_name)
def test_valid_corpus_file_parses(path: Path) -> None:
    """Every file named valid parses, the two listed with their options: findings as listed."""
    ach = parse(path.read_bytes(), name=path.name, options=_options(_name(path)))
    assert ach.entry_addenda_count == sum(b.entry_addenda_count for b in ach.batches)
    fields = tuple(dict.fromkeys(finding.field for finding in ach.findings))
    assert fields == WITH_FINDINGS.get(_name(path), ())


@pytest.mark.parametrize("path", sorted(WITH_FINDINGS), ids=str)
def test_findings_name_file_line_and_field(path: str) -> None:
    """Each finding reads like a refusal: the file's name, the line and the field at fault."""
    name = Path(path).name
    findings = parse((CORPUS / path).read_bytes(), name=name, options=_options(path)).findings
    assert findings
    for finding in findings:
        assert finding.line >= 1
        assert str(finding) == f"{name}: line {finding.line}, field '{finding.field}': " + (
            finding.detail
        )


@pytest.mark.parametrize("path", REFUSED, ids=_name)
def test_invalid_corpus_file_is_refused(path: Path) -> None:
    """Every file whose name marks it invalid is refused with a NachaError naming its line."""
    with pytest.raises(NachaError) as caught:
        parse(path.read_bytes(), name=path.name)
    assert caught.value.line >= 1
    assert str(caught.value).startswith(f"{path.name}: line {caught.value.line}, field '")


def test_read_options_are_off_by_default() -> None:
    """Every reader option is off unless asked for: parse's default reads NACHA's rules only."""
    assert all(not getattr(STRICT, option.name) for option in dataclasses.fields(ReadOptions))
    assert inspect.signature(parse).parameters["options"].default == STRICT


@pytest.mark.parametrize("path", sorted(READ_WITH_OPTIONS), ids=str)
def test_file_read_with_options_is_refused_without_each(path: str) -> None:
    """Without its options, or without any one of them, the file is refused as its twin is."""
    data, options = (CORPUS / path).read_bytes(), READ_WITH_OPTIONS[path]
    with pytest.raises(NachaError) as caught:
        parse(data)
    with pytest.raises(NachaError) as twin_caught:
        parse((CORPUS / TWINS[path]).read_bytes())
    assert caught.value.field == twin_caught.value.field
    used = [option.name for option in dataclasses.fields(options) if getattr(options, option.name)]
    for name in used:
        with pytest.raises(NachaError):
            parse(data, options=dataclasses.replace(options, **{name: False}))


@pytest.mark.parametrize("path", sorted(READ_WITH_OPTIONS), ids=str)
def test_twin_reads_alike_with_the_same_options(path: str) -> None:
    """With the same options the invalid twin reads too, with findings on the same fields."""
    options = READ_WITH_OPTIONS[path]
    findings = parse((CORPUS / path).read_bytes(), options=options).findings
    twin_findings = parse((CORPUS / TWINS[path]).read_bytes(), options=options).findings
    assert [f.field for f in twin_findings] == [f.field for f in findings]


def test_fragment_reads_into_batches_saying_what_is_missing() -> None:
    """The fragment gives its two batches and three entries, and a finding per missing record."""
    path = "test/testdata/bh-ed-ad-bh-ed-ad-ed-ad.ach"
    ach = parse((CORPUS / path).read_bytes(), name="fragment", options=READ_WITH_OPTIONS[path])
    assert [(b.service_class_code, len(b.entries)) for b in ach.batches] == [(225, 1), (220, 2)]
    assert [e.addenda[0].return_code for b in ach.batches for e in b.entries] == [
        "R02",
        "R03",
        "R03",
    ]
    assert (ach.immediate_origin, ach.creation_date) == ("", None)
    missing = [(f.line, f.detail) for f in ach.findings if f.field == "record_type"]
    assert missing == [
        (
            1,
            "'5' (a batch header) where the file header '1' belongs: read without it"
            " (allow_missing_file_header)",
        ),
        (
            4,
            "'5' (a batch header) where the control '8' of the batch at line 1 belongs: read"
            " without it (allow_missing_batch_control)",
        ),
        (
            9,
            "the file ends where the control '8' of the batch at line 4 belongs: read without it"
            " (allow_missing_batch_control)",
        ),
        (9, "the file ends where the file control '9' belongs"),
    ]


def test_custom_return_code_is_a_finding_and_must_look_like_one() -> None:
    """With custom_return_codes R97 reads, with a finding; a code not shaped R99 is refused."""
    path = CORPUS / "test/testdata/return-PPD-custom-reason-code.ach"
    text = path.read_text()
    ach = parse(text, options=READ_WITH_OPTIONS[_name(path)])
    assert ach.batches[0].entries[0].addenda[0].return_code == "R97"
    assert [(f.line, f.value) for f in ach.findings] == [(4, "R97")]
    with pytest.raises(NachaError) as caught:
        parse(text.replace("799R97", "799X97"), options=LENIENT)
    assert (caught.value.line, caught.value.field, caught.value.value) == (4, "return_code", "X97")


def test_batch_without_control_reads_only_where_something_else_starts() -> None:
    """A batch control missing before the file control reads with the option; a batch with no
    entries does not, nor does one followed by a stray record."""
    records = write(_sample()).split("\n")
    without = "\n".join(records[:11] + records[12:])
    with pytest.raises(NachaError) as caught:
        parse(without)
    assert (caught.value.line, caught.value.field) == (12, "record_type")
    ach = parse(without, options=ReadOptions(allow_missing_batch_control=True))
    assert ach == _sample()
    assert [(f.line, f.field) for f in ach.findings] == [(12, "record_type")]
    empty = "\n".join(records[:7] + records[12:])
    with pytest.raises(NachaError) as caught:
        parse(empty, options=LENIENT)
    assert (caught.value.line, caught.value.field, caught.value.value) == (8, "record_type", "9")
    stray = "\n".join([*records[:5], records[0], *records[6:]])
    with pytest.raises(NachaError) as caught:
        parse(stray, options=LENIENT)
    assert (caught.value.line, caught.value.field, caught.value.value) == (6, "record_type", "1")


def test_the_r97_twin_differs_only_in_its_code() -> None:
    """iat-invalidAddenda99.ach is the valid iat-addenda99.ach with R96 for R01."""
    valid = (CORPUS / "test/testdata/iat-addenda99.ach").read_text().splitlines()
    invalid = (CORPUS / "test/testdata/iat-invalidAddenda99.ach").read_text().splitlines()
    differ = [(a, b) for a, b in zip(valid, invalid, strict=True) if a != b]
    assert [(a[3:6], b[3:6], a[:3] + a[6:] == b[:3] + b[6:]) for a, b in differ] == [
        ("R01", "R96", True)
    ]


def test_the_corpus_is_where_the_tests_look() -> None:
    """The corpus path resolves from tests/funding and holds both kinds of file."""
    assert len(VALID) > 80
    assert set(READ_WITH_OPTIONS) <= {_name(p) for p in VALID}
    assert set(TWINS.values()) <= {_name(p) for p in REFUSED}
    assert len(REFUSED) > 30
    assert len(PPD_REWRITTEN) > 15


@pytest.mark.parametrize("path", PPD_REWRITTEN, ids=_name)
def test_ppd_corpus_file_is_written_back_as_read(path: Path) -> None:
    """write(parse(file)) gives the file's own records, modulo line endings and padding."""
    data = path.read_bytes()
    written = write(parse(data))
    assert _records(written) == _records(data)
    assert parse(written).findings == ()


def test_round_trip_exceptions_differ_as_listed() -> None:
    """The two PPD files not rewritten as read differ exactly as NOT_REWRITTEN_AS_READ says."""
    contested = CORPUS / "examples/testdata/contested-return.ach"
    rewritten = _records(write(parse(contested.read_bytes())))
    assert rewritten[1][69:75] == "      "
    assert _records(contested.read_bytes())[1][69:75] == "000000"
    with pytest.raises(NachaError, match="is not printable ASCII") as caught:
        write(parse((CORPUS / "test/testdata/extended-ascii.ach").read_bytes()))
    assert caught.value.field == "individual_name"


def test_written_file_parses_back_equal_with_computed_controls() -> None:
    """A file built in code is written with correct controls and parses back equal."""
    ach = _sample()
    text = write(ach)
    records = text.split("\n")
    parsed = parse(text)
    assert parsed == ach
    assert parsed.findings == ()
    assert records[-1] == ""
    assert len(records[:-1]) % 10 == 0
    assert {len(r) for r in records[:-1]} == {94}
    assert parsed.entry_hash == 12104288 + 23138010 + 3130001 + 9100001
    assert (parsed.total_credit_minor, parsed.total_debit_minor) == (12_445, 5_000)
    control = "82200000030035242298000000000000000000012445" + "1234567890" + " " * 25
    assert records[5] == control + "076401250000001"
    assert records[12] == "9000002000002000000070047472300000000005000000000012445" + " " * 39


def test_writer_numbers_payment_addenda() -> None:
    """05 addenda get their sequence among the entry's addenda and the entry's sequence number."""
    records = write(_sample(("99999999999",) * 3)).split("\n")
    assert (records[3][83:], records[8][83:], records[9][83:]) == NUMBERED
    assert (records[7][78], records[10][78]) == ("1", "0")


def test_crlf_and_unbroken_files_read_the_same() -> None:
    """CRLF endings, no line breaks at all, and stripped trailing blanks all read alike."""
    text = write(_sample())
    records = text.rstrip("\n").split("\n")
    assert parse(text.replace("\n", "\r\n")) == parse(text)
    assert parse("".join(records)) == parse(text)
    assert parse("\n".join(r.rstrip(" ") for r in records)) == parse(text)


def test_non_numeric_amount_is_named() -> None:
    """A non-numeric amount is refused with its line, field and text."""
    records = write(_sample()).split("\n")
    records[2] = records[2][:29] + "00000A1000" + records[2][39:]
    with pytest.raises(NachaError) as caught:
        parse("\n".join(records), name="payouts.ach")
    assert str(caught.value) == "payouts.ach: line 3, field 'amount': '00000A1000' is not numeric"
    assert (caught.value.line, caught.value.field, caught.value.value) == (
        3,
        "amount",
        "00000A1000",
    )


def test_entry_hash_mismatch_names_both_sums() -> None:
    """A batch control whose entry hash disagrees with its entries says both numbers."""
    records = write(_sample()).split("\n")
    records[5] = records[5][:10] + "0035242297" + records[5][20:]
    with pytest.raises(NachaError) as caught:
        parse("\n".join(records))
    expected = (
        "line 6, field 'entry_hash': batch control says 0035242297, entries sum to 0035242298"
    )
    assert str(caught.value) == f"file: {expected}"


def test_file_control_disagreement_is_a_finding() -> None:
    """A file control whose entry hash disagrees with the batches reads, with one finding."""
    records = write(_sample()).split("\n")
    records[12] = records[12][:21] + "0047472299" + records[12][31:]
    ach = parse("\n".join(records), name="returns.ach")
    assert ach == _sample()
    assert [str(finding) for finding in ach.findings] == [
        "returns.ach: line 13, field 'entry_hash': file control says 0047472299, entries sum to"
        " 0047472300"
    ]


def test_file_control_that_contradicts_itself_is_refused() -> None:
    """A file control with money in it but an entry count of zero is refused, not a finding."""
    records = write(_sample()).split("\n")
    records[12] = records[12][:13] + "00000000" + records[12][21:]
    with pytest.raises(NachaError, match="the field is mandatory") as caught:
        parse("\n".join(records))
    assert (caught.value.line, caught.value.field) == (13, "entry_addenda_count")


def test_writer_refuses_what_would_read_back_with_findings() -> None:
    """A debit in a credits-only batch is only a finding when read, but the writer refuses it."""
    debit_in_credits = _file(_batch(1, (_entry(27, "12104288", 1, 100),), service_class=220))
    with pytest.raises(NachaError) as caught:
        write(debit_in_credits)
    assert (caught.value.name, caught.value.line, caught.value.field) == (
        "output",
        3,
        "transaction_code",
    )


def test_record_cut_short_is_refused() -> None:
    """A short record that ends in a blank was cut, not stripped, and is refused."""
    records = write(_sample()).split("\n")
    records[2] = records[2][:70]
    with pytest.raises(NachaError, match="ends in a blank") as caught:
        parse("\n".join(records))
    assert (caught.value.line, caught.value.field, caught.value.value) == (3, "record_length", "70")


def test_addenda_without_indicator_is_refused() -> None:
    """An addenda after an entry whose addenda indicator is 0 is refused."""
    records = write(_sample()).split("\n")
    records[2] = records[2][:78] + "0" + records[2][79:]
    with pytest.raises(NachaError) as caught:
        parse("\n".join(records))
    assert (caught.value.line, caught.value.field) == (4, "addenda_indicator")


def test_trace_numbers_must_ascend_within_a_batch() -> None:
    """Entries of a batch come in ascending trace number order."""
    ach = _file(_batch(1, (_entry(22, "12104288", 2, 1), _entry(22, "12104288", 1, 1))))
    with pytest.raises(NachaError) as caught:
        write(ach)
    assert (caught.value.name, caught.value.line, caught.value.field) == (
        "output",
        4,
        "trace_number",
    )


def test_padding_past_the_last_block_is_refused() -> None:
    """Only enough 94-character '9' records to fill the last block may follow the file control."""
    text = write(_sample())
    with pytest.raises(NachaError) as caught:
        parse(text + (PADDING + "\n") * 10)
    assert caught.value.field == "padding"


def test_writer_masks_account_numbers() -> None:
    """An account number too long to write is reported by its last four characters only."""
    entry = _entry(22, "12104288", 1, 100)
    long_account = dataclasses.replace(entry, account_number="123456789012345678")
    with pytest.raises(NachaError) as caught:
        write(_file(_batch(1, (long_account,))))
    assert caught.value.value == "**************5678"
    assert "123456789012345678" not in str(caught.value)


def test_latin1_names_and_blank_effective_dates_are_read() -> None:
    """Latin-1 bytes in a name decode; a blank effective entry date reads as None."""
    records = write(_sample(name="JOSE")).split("\n")
    records[1] = records[1][:69] + "      " + records[1][75:]
    data = "\n".join(records).replace("JOSE", "JOSÉ").encode("latin-1")
    ach = parse(data)
    assert ach.batches[0].entries[1].individual_name == "JOSÉ"
    assert ach.batches[0].effective_entry_date is None


def test_writer_refuses_iat_batches() -> None:
    """IAT batches are read but not written."""
    iat = parse((CORPUS / "test/ach-iat-read/iat-credit.ach").read_bytes())
    with pytest.raises(NachaError, match="writing IAT batches is not supported"):
        write(iat)


def test_iat_file_is_read_with_its_addenda() -> None:
    """An IAT file parses; entries keep their addenda 10-18 and their raw records."""
    ach = parse((CORPUS / "test/ach-iat-read/iat-credit.ach").read_bytes())
    entry = ach.batches[0].entries[0]
    assert ach.batches[0].sec_code == "IAT"
    assert [a.type_code for a in entry.addenda] == [f"{n}" for n in range(10, 19)]
    assert (entry.amount_minor, entry.raw[:3]) == (100_000, "622")


def test_routing_check_digits() -> None:
    """ABA check digits: weights 3, 7, 1; the weighted sum of all nine digits ends in zero."""
    assert check_digit("12104288") == "2"
    assert routing_checksum_ok("121042882")
    assert not routing_checksum_ok("121042883")
    assert not routing_checksum_ok("12104288")
    assert not routing_checksum_ok("12104288²")
    with pytest.raises(ValueError, match="'1210428A' is not 8 digits"):
        check_digit("1210428A")


def test_trace_number_and_return_addenda() -> None:
    """Trace numbers join ODFI id and sequence; a return addenda exposes its parsed fields."""
    assert trace_number("07640125", 42) == "076401250000042"
    with pytest.raises(ValueError, match="10000000"):
        trace_number("07640125", 10_000_000)
    addenda = Addenda.return_("R01", "076401250000042", "12104288", "121042880000001", "NSF")
    assert (addenda.return_code, addenda.original_trace, addenda.original_rdfi) == (
        "R01",
        "076401250000042",
        "12104288",
    )
    assert (addenda.addenda_information, addenda.date_of_death) == ("NSF", "")
    assert addenda.trace_number == "121042880000001"
    with pytest.raises(ValueError, match="'R99' is not a NACHA return reason code"):
        Addenda.return_("R99", "076401250000042", "12104288", "121042880000001")


def test_ten_thousand_entry_returns_file() -> None:
    """A 10,000-entry returns file (21/26 entries, one 99 addenda each) writes and parses back."""
    original = _originated(batches=5, per_batch=2_000)
    codes = {e.trace_number: "R01" if n % 2 else "R03" for n, e in enumerate(_all(original))}
    returns = make_returns_file(original, codes, created_at=datetime(2025, 3, 5, 9, 30))
    parsed = parse(write(returns))
    entries = _all(parsed)
    assert parsed == returns
    assert len(entries) == 10_000
    assert len(parsed.batches) == 20
    assert {e.transaction_code for e in entries} == {21, 26}
    assert {len(e.addenda) for e in entries} == {1}
    assert {e.addenda[0].original_trace for e in entries} == set(codes)
    assert parsed.entry_addenda_count == 20_000
    assert parsed.total_debit_minor + parsed.total_credit_minor == sum(
        e.amount_minor for e in _all(original)
    )


def test_returns_file_sends_entries_back_to_the_odfi() -> None:
    """A return goes to the original ODFI, under the RDFI's trace number, naming the original."""
    original = _originated(batches=1, per_batch=4)
    first = original.batches[0].entries[0]
    returns = make_returns_file(
        original, {first.trace_number: "R02"}, created_at=datetime(2025, 3, 5, 9, 30)
    )
    entry = returns.batches[0].entries[0]
    assert (entry.transaction_code, entry.rdfi_routing) == (21, "076401251")
    assert entry.trace_number == "121042880000001"
    assert entry.addenda[0].return_code == "R02"
    assert entry.addenda[0].original_trace == first.trace_number
    assert returns.batches[0].service_class_code == 220
    with pytest.raises(ValueError, match="'999' is not in the original file"):
        make_returns_file(original, {"999": "R01"}, created_at=datetime(2025, 3, 5))


def _all(ach: AchFile) -> list[EntryDetail]:
    return [entry for batch in ach.batches for entry in batch.entries]


# Fuzzing: mutations of valid files must give a parsed file or a NachaError, nothing else.

SEEDS = [
    write(_sample()),
    write(make_returns_file(_originated(2, 3), {}, created_at=datetime(2025, 3, 5))),
    write(
        make_returns_file(
            _originated(2, 6),
            {e.trace_number: "R10" for e in _all(_originated(2, 6))[::2]},
            created_at=datetime(2025, 3, 5),
        )
    ),
    *(
        (CORPUS / name).read_text(encoding="latin-1")
        for name in (
            "test/ach-iat-read/iat-credit.ach",
            "test/testdata/adv.ach",
            "examples/testdata/cor-read.ach",
            "examples/testdata/ctx-debit.ach",
            "examples/testdata/mte-read.ach",
            "examples/testdata/dishonored-return.ach",
        )
    ),
]
NOISE = st.sampled_from(list("0123456789 9AZaz*\\\x00\x1a\t\r\n¦żé\ufeff"))


@st.composite
def mutated_files(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SEEDS)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["flip", "cut", "insert", "drop", "copy", "trim"]))
        if operation == "flip":
            column = draw(st.integers(0, max(len(lines[at]) - 1, 0)))
            lines[at] = lines[at][:column] + draw(NOISE) + lines[at][column + 1 :]
        elif operation == "cut":
            lines[at] = lines[at][: draw(st.integers(0, 94))]
        elif operation == "insert":
            lines.insert(at, draw(st.sampled_from([*lines, "", PADDING, "5" * 94, "7" * 94])))
        elif operation == "drop":
            del lines[at : at + min(1, len(lines) - 1)]
        elif operation == "copy":
            lines.insert(at, lines[draw(st.integers(0, len(lines) - 1))])
        else:
            lines = lines[: max(at, 1)]
    return "\n".join(lines)


def _parse_or_refuse(data: str | bytes) -> None:
    for options in (STRICT, LENIENT):
        try:
            ach = parse(data, options=options)
        except NachaError as err:
            assert err.line >= 1
            assert err.field
        else:
            assert all(finding.line >= 1 and finding.field for finding in ach.findings)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_files())
def test_mutated_files_give_a_file_or_a_nacha_error(text: str) -> None:
    """Flipped characters, cut or inserted lines: a file (findings and all) or a NachaError."""
    _parse_or_refuse(text)
    _parse_or_refuse(text.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2_000), st.sampled_from(SEEDS))
def test_random_bytes_give_a_file_or_a_nacha_error(noise: bytes, seed: str) -> None:
    """Arbitrary bytes, alone or spliced into a valid file, never escape as another error."""
    _parse_or_refuse(noise)
    middle = len(seed) // 2
    _parse_or_refuse(seed[:middle].encode("latin-1") + noise + seed[middle:].encode("latin-1"))
