"""uvicorn's HTTP protocol, with each response leaving in one system call.

uvicorn writes a response's status line and headers when the app starts the response, and the
body when the app sends it: two writes, each a system call straight away, and two TCP segments,
so the client is often woken twice to read one answer. On this project's machines a loopback
TCP round trip costs tens of microseconds of CPU, a large share of a small request's cost.
`Protocol` hands uvicorn a transport that gathers the writes made in one turn of the event loop
and sends them together at the end of it: the head and body of a response, which an ASGI app
sends back to back without waiting, go out as one. Nothing else changes: closing first sends
what is gathered, and everything but writing is the real transport's.

Served with `uvicorn.run(..., http="billfold.platform.httpwire:Protocol")`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GatheredWrites:
    """A transport whose writes of one event-loop turn are sent as one."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        # Reading, flow control, extra info (addresses, socket, TLS) and the rest.
        return getattr(self._transport, name)


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `GatheredWrites` transport."""

    def connection_made(self, transport: Any) -> None:
        # (uvloop's transports implement asyncio.Transport without deriving from it.)
        gathered = GatheredWrites(transport, asyncio.get_running_loop())
        super().connection_made(gathered)  # type: ignore[arg-type]
