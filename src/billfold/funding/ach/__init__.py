"""ACH: NACHA files read and written, the banking-day calendar, and the files exchanged with the
bank.

The format is pure Python and touches no database: `parse` and `write` (nacha.py, the contract in
its docstring), the records they read into and write from (records.py), each record's fields
(fields.py) and the leniencies a reader may ask for (options.py). calendar.py counts banking
days. files.py exports the day's outgoing file and applies a returns file, through the funding
context; import it as `billfold.funding.ach.files` (it is not re-exported here, as it needs the
rest of funding).
"""

from billfold.funding.ach.calendar import add_banking_days, banking_days_between, is_banking_day
from billfold.funding.ach.nacha import (
    AchFile,
    Addenda,
    Batch,
    EntryDetail,
    NachaError,
    NachaFinding,
    ReadOptions,
    check_digit,
    make_returns_file,
    parse,
    routing_checksum_ok,
    split_records,
    trace_number,
    write,
)

__all__ = [
    "AchFile",
    "Addenda",
    "Batch",
    "EntryDetail",
    "NachaError",
    "NachaFinding",
    "ReadOptions",
    "add_banking_days",
    "banking_days_between",
    "check_digit",
    "is_banking_day",
    "make_returns_file",
    "parse",
    "routing_checksum_ok",
    "split_records",
    "trace_number",
    "write",
]
