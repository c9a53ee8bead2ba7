"""structlog, rendering one JSON object per line on stderr, for our logs and every library's."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from billfold.config import Settings
from billfold.platform.metrics import LOG_WARNINGS

# The id of the HTTP request being served, set by the request middleware; added to every log line.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Libraries that install handlers of their own; we route them through the root handler instead.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "asyncpg")
# The request middleware writes the access log, with the request id and route; uvicorn's would
# repeat each line.
_SILENCED_LOGGERS = ("uvicorn.access",)
# Libraries that narrate routine work at INFO; only their warnings and errors are worth a line.
_QUIET_LOGGERS = ("pgserver",)


def configure_logging(settings: Settings) -> None:
    """Send all logging, ours through structlog and the stdlib's, to stderr at settings.log_level.

    JSON when settings.log_json, else a console format for people. Safe to call more than once.
    """
    level = logging.getLevelNamesMapping().get(settings.log_level.upper())
    if level is None:
        raise ValueError(f"log level '{settings.log_level}' is not DEBUG, INFO, WARNING or ERROR")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks without their frames' local variables: a local may hold a bank account number
    # on its way to the NACHA file, or a request body, and logs must never carry those.
    renderer: list[Processor] = (
        [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(_dumps),
        ]
        if settings.log_json
        else [
            structlog.dev.ConsoleRenderer(
                exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
            )
        ]
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    global _repeats
    if _repeats is not None:
        _repeats.flush()
    _repeats = RepeatedWarnings(settings.log_repeat_interval_s)
    handler.addFilter(_repeats)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        library_logger.handlers = []
        library_logger.propagate = True
    for name in _SILENCED_LOGGERS:
        logging.getLogger(name).disabled = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def _add_request_id(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def _dumps(value: object, **_: object) -> str:
    try:
        return orjson.dumps(value, default=repr).decode()
    except orjson.JSONEncodeError:
        # Text that is not valid Unicode (a lone surrogate, from a client or in an exception's
        # message) has no UTF-8 form: written with the character escaped, the line stays JSON.
        return orjson.dumps(_escaped(value), default=repr).decode()


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(item) for item in value]
    return value


REPEATED = "repeated"  # a repeat line's field: how many of its warning it stands for
MAX_KINDS = 256  # warnings told apart (logger, message); past it, the rest go unaggregated


@dataclass
class _Run:
    """A warning's current interval: until when, its repeats so far, and the last one's
    message."""

    ends_at: float
    repeats: int = 0
    message: str = ""


class RepeatedWarnings(logging.Filter):
    """A filter on the log handler: of identical warnings (one logger, one message template),
    the first is written and the repeats within `interval_s` are counted, then written as one
    line at the interval's end, with `repeated` (how many) and `interval_s`. While they go on,
    that is one line an interval; after a quiet interval the next is written in full again.
    Every warning, written or not, counts in billfold_log_warnings_total. `interval_s` 0: all
    are written.

    Under overload one cause may warn once a request, thousands of times a second
    ("risk assessment overran its budget"): each line is work for a process already short of
    it, and the flood buries every other line. It filters at the handler, where our structlog
    lines and the standard library's records meet. The repeat line is written from a timer
    thread, so it comes even when the warnings stop; a process that exits writes what it
    counted.
    """

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._runs: dict[tuple[str, str], _Run] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        # A structlog line arrives with its event dict as the message (wrap_for_formatter).
        logged = record.msg if isinstance(record.msg, dict) else None
        if logged is not None and REPEATED in logged:
            return True
        kind = (
            record.name,
            str(logged.get("event", "")) if logged is not None else str(record.msg),
        )
        now = time.monotonic()
        with self._lock:
            run = self._runs.get(kind)
            known = run is not None or self._room(now)
            LOG_WARNINGS.labels(*(kind if known else (kind[0], "(other)"))).inc()
            if not known or not self.interval_s:
                return True
            if run is None or now >= run.ends_at:
                self._runs[kind] = _Run(now + self.interval_s)
                return True
            run.repeats += 1
            run.message = kind[1] if logged is not None else _message(record)
            if run.repeats == 1:
                timer = threading.Timer(run.ends_at - now, self._write, (kind,))
                timer.daemon = True
                timer.start()
        return False

    def _room(self, now: float) -> bool:
        """Whether another kind of warning may be told apart (forgets the quiet ones first)."""
        if len(self._runs) >= MAX_KINDS:
            for kind in [k for k, run in self._runs.items() if run.ends_at <= now]:
                del self._runs[kind]
        return len(self._runs) < MAX_KINDS

    def _write(self, kind: tuple[str, str]) -> None:
        """The repeat line of `kind`'s interval; the next interval starts where it ended, so
        that repeats that go on keep to one line an interval."""
        with self._lock:
            run = self._runs.get(kind)
            if run is None or not run.repeats:
                return
            self._runs[kind] = _Run(run.ends_at + self.interval_s)
        get_logger(kind[0]).warning(
            run.message, **{REPEATED: run.repeats, "interval_s": self.interval_s}
        )

    def flush(self) -> None:
        """Write the repeat lines counted so far (at exit, or when logging is set up anew)."""
        for kind in list(self._runs):
            self._write(kind)


def _message(record: logging.LogRecord) -> str:
    """A standard library record's message with its values in (its template, if they do not
    fit it: the handler would report that error when the line is written, not here)."""
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        return str(record.msg)


_repeats: RepeatedWarnings | None = None


@atexit.register
def _flush_repeats() -> None:
    if _repeats is not None:
        _repeats.flush()
