"""The operators' funding commands (billfold ach export | import), run as the shell runs them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billfold.config import Settings
from billfold.funding import ach
from billfold.funding.ach.files import export_file
from billfold.funding.rails import load
from billfold.funding.views import funding_view
from tests.world import World, billfold


@pytest.fixture(scope="module")
def settings(isolated_settings: Settings) -> Settings:
    """A database of this module's own: `billfold ach export` sends every pending entry in
    the database, and other modules leave entries it must not meet."""
    return isolated_settings


async def shown(world: World, funding_id: str) -> tuple[str, str | None]:
    """(status, return_code) of the movement, as the API shows them."""
    ft = await load(world.state.pool, funding_id)
    assert ft is not None
    view = funding_view(ft)
    return view["status"], view["return_code"]


async def test_the_export_and_import_commands_round_trip(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    """`billfold ach export` writes the pending entries; the bank's returns file for it goes
    through `billfold ach import`; a second import changes nothing."""
    person, bank_id = await world.person_with_bank("246813579")
    funding_id = str((await world.add_funds(person, "12.34", bank=bank_id)).id)
    out = tmp_path / "today.ach"
    exported = billfold(settings, "ach", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert f"entries written to {out}" in exported.stdout
    trace = await world.state.pool.fetchval(
        "SELECT trace_number FROM funding_transfers WHERE id = $1", uuid.UUID(funding_id)
    )
    assert trace in {e.trace_number for b in ach.parse(out.read_text()).batches for e in b.entries}
    returns = ach.make_returns_file(
        ach.parse(out.read_text()), {trace: "R03"}, created_at=datetime.now(UTC)
    )
    back = tmp_path / "returns.ach"
    back.write_text(ach.write(returns))
    imported = billfold(settings, "ach", "import", str(back))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("1 returns: 1 applied, 0 already applied, 0 refused")
    again = billfold(settings, "ach", "import", str(back))
    assert again.stdout.startswith("1 returns: 0 applied, 1 already applied")
    assert await shown(world, funding_id) == ("RETURNED", "R03")


async def test_import_refuses_a_file_with_findings_unless_they_are_accepted(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    """A returns file whose file control disagrees with its entries is refused whole, its
    finding named; with --accept-findings it is applied and the finding printed."""
    person, bank_id = await world.person_with_bank("135792468")
    funding_id = str((await world.add_funds(person, "7.50", bank=bank_id)).id)
    sent = tmp_path / "today.ach"
    assert await export_file(world.state.funding, sent) >= 1
    trace = await world.state.pool.fetchval(
        "SELECT trace_number FROM funding_transfers WHERE id = $1", uuid.UUID(funding_id)
    )
    returns = ach.make_returns_file(
        ach.parse(sent.read_text()), {trace: "R01"}, created_at=datetime.now(UTC)
    )
    lines = ach.write(returns).splitlines()
    control = next(n for n, line in enumerate(lines) if line[0] == "9" and line != "9" * 94)
    lines[control] = lines[control][:21] + "9999999999" + lines[control][31:]
    back = tmp_path / "returns.ach"
    back.write_text("\n".join(lines) + "\n")
    finding = f"returns.ach: line {control + 1}, field 'entry_hash': file control says 9999999999"
    refused = billfold(settings, "ach", "import", str(back))
    assert refused.returncode == 1, refused.stderr
    assert "breaks NACHA rules (1 finding); nothing was applied" in refused.stderr
    assert f"finding: {finding}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert await shown(world, funding_id) == ("PENDING", None)
    accepted = billfold(settings, "ach", "import", "--accept-findings", str(back))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("1 returns: 1 applied, 0 already applied, 0 refused")
    assert f"accepted finding: {finding}" in accepted.stdout
    assert await shown(world, funding_id) == ("RETURNED", "R01")


def test_a_malformed_returns_file_is_refused_naming_line_and_field(
    settings: Settings, tmp_path: Path
) -> None:
    """`billfold ach import` of a broken file: exit 1, one line naming the line and the field,
    no traceback."""
    broken = tmp_path / "broken.ach"
    corpus = Path(__file__).parent / "ach/testdata/nacha"
    good = corpus / "test/ach-ppd-read/ppd-debit.ach"
    lines = good.read_text().splitlines()
    lines[2] = lines[2][:29] + "00000A1000" + lines[2][39:]
    broken.write_text("\n".join(lines) + "\n")
    result = billfold(settings, "ach", "import", str(broken))
    assert result.returncode == 1, result.stderr
    assert "line 3" in result.stderr and "amount" in result.stderr
    assert "Traceback" not in result.stderr
