"""The webhooks context's tests: a running app whose dispatcher retries in fractions of a second,
real HTTP receivers on 127.0.0.1, and events written to the outbox as a producer writes them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from billfold.config import Settings
from billfold.events import outbox
from billfold.webhooks import deliveries, endpoints
from billfold_bench.rules import LOAD_TEST_RULES
from tests.world import World, running_app

# Retries within a fifth of a second, a delivery given up (and its endpoint disabled) 4 s after
# its first try, an attempt given up after 1 s: what takes days in production takes seconds.
FAST = {
    "webhooks_retry_first_s": 0.05,
    "webhooks_retry_max_s": 0.2,
    "webhooks_retry_window_s": 4.0,
    "webhooks_timeout_s": 1.0,
    "webhooks_poll_s": 0.05,
    "webhooks_allow_local": True,
}
WAIT_S = 30.0  # the longest any test waits for a delivery

# What a receiver answers a request: a status, or None to close the connection unanswered.
Answer = Callable[[], int | None]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int | None = None  # the status it answered; None while answering, or if closed
    closed: bool = False  # the connection closed unanswered


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 (in a thread of its own), recording every request."""

    url: str
    answer: Answer
    received: list[Received] = field(default_factory=list)

    def delivered(self) -> list[Received]:
        """The requests it answered with a 2xx."""
        return [r for r in list(self.received) if r.answered and 200 <= r.answered < 300]

    async def wait(self, done: Callable[[Receiver], bool], timeout_s: float = WAIT_S) -> bool:
        """Whether `done` came true within the time."""
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True


class Server(ThreadingHTTPServer):
    # Room for a dispatcher's burst of connections: past a full accept queue the kernel drops a
    # connection's first packet, and the client tries again only a second later.
    request_queue_size = 128
    daemon_threads = True


@contextlib.contextmanager
def receiving(answer: Answer, path: str = "/hook") -> Iterator[Receiver]:
    receiver = Receiver("", answer)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received = Received({k.lower(): v for k, v in self.headers.items()}, body)
            receiver.received.append(received)
            status = receiver.answer()
            if status is None:
                received.closed = True
                self.close_connection = True  # no answer: the client sees the connection close
                return
            received.answered = status
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = Server(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def always(status: int) -> Answer:
    return lambda: status


@pytest.fixture(scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    async with running_app(settings, risk_rules=LOAD_TEST_RULES, **FAST) as app:
        yield World(app)


async def register(
    world: World, owner: uuid.UUID, url: str, event_types: list[str] | None = None
) -> dict[str, Any]:
    """An endpoint of the owner's, as the API registers it (its secret in `secret`)."""
    hooks = world.state.webhooks
    request = endpoints.check_create_endpoint(hooks.settings, url, event_types, "test")
    return await endpoints.do_create_endpoint(hooks, owner, request)


async def tell(world: World, kind: str, data: Mapping[str, Any]) -> outbox.Event:
    """An event written to the outbox in a transaction of its own, as a producer writes one."""
    event = outbox.Event(kind, f"test/{uuid.uuid4()}", "test", datetime.now(UTC), dict(data))
    async with world.state.pool.acquire() as conn, conn.transaction():
        await outbox.write(conn, [event])
    return event


async def deliveries_of(world: World, owner: uuid.UUID, endpoint_id: str) -> list[dict[str, Any]]:
    page = await deliveries.list_deliveries(
        world.state.pool, owner, endpoint_id, deliveries.MAX_LIMIT, None
    )
    found: list[dict[str, Any]] = page["deliveries"]
    return found


async def until(check: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """The first truthy value of the coroutine function `check`, polled; None past the time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    return None
