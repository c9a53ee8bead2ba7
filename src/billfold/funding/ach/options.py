"""Reader options: what `nacha.parse` reads only when asked, as moov-io/ach's reader does.

moov-io/ach reads some files that are not whole only with its `ValidateOpts`; `ReadOptions`
names the same leniencies in snake_case. Each is off by default, and each use comes back as a
finding naming the line and field, so whoever reads with an option sees what it let through.
A file we apply money from (`billfold ach import`) is read with none of them: it must be whole
and standard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What a bank's own return code looks like (R97, say): NACHA's shape, outside NACHA's table.
CUSTOM_RETURN_CODE = re.compile(r"R[0-9]{2}")


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Leniencies beyond NACHA's rules, all off by default.

    `allow_missing_file_header` (moov-io: AllowMissingFileHeader): the records may start at a
    batch header. The file's own fields then read as blank, its creation date as None.

    `allow_missing_batch_control`: a batch may end without its control, where the next batch
    header, the file control or the end of the file comes instead. Nothing then checks the
    batch's counts and totals. moov-io has no option for this: its reader always closes a batch
    there and reports nothing, so its fragments need only the file-level options.

    `custom_return_codes` (moov-io: CustomReturnCodes): a return addenda (99) may carry a code
    outside NACHA's table if it has NACHA's shape, R and two digits (a bank's own R97). Anything
    else there is still refused.

    moov-io's AllowMissingFileControl has no counterpart: a file that ends without its file
    control is always read, with a finding (see nacha.py).
    """

    allow_missing_file_header: bool = False
    allow_missing_batch_control: bool = False
    custom_return_codes: bool = False


STRICT = ReadOptions()
