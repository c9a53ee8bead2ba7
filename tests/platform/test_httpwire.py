"""The HTTP protocol that sends each response in one write (platform.httpwire)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from billfold.cli import HTTP_PROTOCOL
from billfold.platform.httpwire import GatheredWrites
from billfold_bench.http import Connection


class Recorded:
    """What a transport was asked to do: the kernel side of GatheredWrites, written down."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


async def test_the_writes_of_one_turn_leave_as_one_and_later_ones_apart() -> None:
    recorded = Recorded()
    gathered = GatheredWrites(recorded, asyncio.get_running_loop())  # type: ignore[arg-type]
    gathered.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    gathered.write(b"")
    gathered.write(b"ok")
    assert recorded.writes == []
    assert gathered.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert recorded.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    gathered.writelines([b"next", bytearray(b" one")])
    await asyncio.sleep(0)
    assert recorded.writes[1:] == [b"next one"]
    # Everything else is the real transport's.
    assert gathered.get_extra_info("sockname") == ("127.0.0.1", 8000)


async def test_closing_sends_what_is_gathered_first_and_aborting_drops_it() -> None:
    loop = asyncio.get_running_loop()
    recorded = Recorded()
    gathered = GatheredWrites(recorded, loop)  # type: ignore[arg-type]
    gathered.write(b"last words")
    gathered.close()
    assert recorded.writes == [b"last words"]
    assert recorded.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
    assert recorded.writes == [b"last words"]

    dropped = Recorded()
    gathered = GatheredWrites(dropped, loop)  # type: ignore[arg-type]
    gathered.write(b"never sent")
    gathered.abort()
    await asyncio.sleep(0)
    assert dropped.writes == []
    assert dropped.aborted


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request's path and body, head and body sent apart as ASGI does."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = scope["path"].encode() + b":" + body
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def _server() -> AsyncIterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=HTTP_PROTOCOL, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server stopped"
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task


async def test_uvicorn_serves_keep_alive_and_closing_connections_with_it() -> None:
    async with _server() as port:
        connection = Connection("127.0.0.1", port)
        try:
            for n in range(3):  # one connection, answers in order
                status, body = await connection.request("POST", f"/{n}", {}, b"x" * (n * 5000))
                assert (status, body) == (200, f"/{n}:".encode() + b"x" * (n * 5000))
        finally:
            await connection.close()
        # A client that asks to close gets the whole answer before the connection closes.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\n/bye:")
