"""structlog, rendering one JSON object per line on stderr, for our logs and every library's."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

import orjson
import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from billfold.config import Settings

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
