"""Group commit: one call per command for the caller, one transaction per batch inside.

Callers `await submit(command)`. Commands gather for a moment (batch_window_ms, or until
batch_max arrive), then one transaction locks every account the batch touches in ascending id
order, applies the commands in arrival order in memory (`apply.apply_batch`), writes all rows and
netted balances in one statement, and commits. Each caller gets its own outcome. Batches that
share no account run side by side, up to batch_concurrency at once.

Idempotency: a key already in flight in this process waits for the first request's outcome; a key
stored by another transaction fails the batch's write on that key, so the batch rolls back, those
commands are answered from the stored outcome, and the rest run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

import asyncpg
import orjson

from billfold.config import Settings
from billfold.events import outbox
from billfold.ledger import store
from billfold.ledger.apply import Target, apply_batch
from billfold.ledger.errors import InvalidTransfer, LedgerBusy, LedgerError
from billfold.ledger.model import AccountBalance, Command, Kind, SideRow, Transfer
from billfold.ledger.replay import Pending, answer_duplicate, answer_from_storage

log = logging.getLogger(__name__)

# Failures that say "try the same batch again", never "the transfer is invalid".
RETRYABLE = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
    asyncpg.UniqueViolationError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    OSError,
)
ID_BLOCK = 1000  # must equal the transfer_ids sequence's INCREMENT
# The transfers that complete a movement, each told by a `transfer.completed` event in the outbox.
COMPLETING = (Kind.TRANSFER, Kind.POST)
# The longest the after-commit hook may hold back a batch's answers.
AFTER_COMMIT_TIMEOUT_S = 0.25


class GroupCommit:
    """The batching under the ledger's commands (engine.Ledger): `submit` runs one command."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        *,
        batch_max: int | None = None,
        side_statements: Mapping[str, str] | None = None,
    ):
        """`side_statements`: name -> SQL of the statements that commands' side rows (SideRow)
        are written by, each taking one array parameter per column, as text."""
        self._pool = pool
        self._side_statements = dict(side_statements or {})
        # The outbox's rows are written with the batch, in its statement (events.outbox): the
        # batch's transfer.completed, and the events its commands carry (their side rows).
        self._outbox = settings.outbox
        self._side_statements[outbox.WITH_COMMAND_NAME] = outbox.WITH_COMMAND
        if self._outbox:
            statement = outbox.transfers_completed(settings.events_partitions)
            self._side_statements[outbox.TRANSFERS_COMPLETED_NAME] = statement
        self._window_s = settings.batch_window_ms / 1000
        self._batch_max = batch_max or settings.batch_max
        self._retries = settings.batch_retries
        self._concurrency = settings.batch_concurrency
        self._slots = asyncio.Semaphore(settings.batch_concurrency)
        self._idle: list[asyncpg.Connection] = []
        self._waiting: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._inflight: dict[tuple[str, str], Pending] = {}
        self._next_id = 0
        self._id_end = 0
        self._collector: asyncio.Task[None] | None = None
        self._running: dict[asyncio.Task[None], list[Pending]] = {}
        # Accounts that running batches hold locks on (or will), with how many batches each.
        self._held: dict[int, int] = {}
        # Called with the committed balances of every account a batch changed, for caches to
        # follow the ledger (see wallet/balances.py). It runs before the callers get their
        # answers, for at most AFTER_COMMIT_TIMEOUT_S.
        self.after_commit: Callable[[list[AccountBalance]], Coroutine[Any, Any, None]] | None = None
        # Called, when set, with the ids of the accounts a batch changed and the primary's WAL
        # position after its commit (a byte offset), for reads on a replica to wait for a
        # person's own writes (platform.replica). In the same bounded time as after_commit.
        self.after_commit_position: Callable[[list[int], int], Coroutine[Any, Any, None]] | None = (
            None
        )
        self.batches = 0
        self.commands = 0

    async def start(self) -> None:
        if self._collector is None:
            self._collector = asyncio.create_task(self._collect(), name="ledger-collector")

    async def warm_up(self) -> None:
        """Opens the connections of every batch slot and prepares their statements, so that
        the first batches after a start do not pay for it (see _connection)."""
        while len(self._idle) < self._concurrency:
            conn = await self._new_connection()
            self._idle.append(conn)  # stop() gives it back, or the pool's close closes it
            await store.lock_accounts(conn, [])

    @property
    def warm_connections(self) -> tuple[asyncpg.Connection, ...]:
        """The connections waiting for a batch: those warm_up opened, until batches take them."""
        return tuple(self._idle)

    async def stop(self) -> None:
        """Finish every command already submitted, then stop."""
        while self._waiting or self._running:
            self._wakeup.set()
            await asyncio.sleep(self._window_s or 0.001)
        if self._collector is not None:
            self._collector.cancel()
            await asyncio.gather(self._collector, return_exceptions=True)
            self._collector = None
        while self._idle:
            await self._pool.release(self._idle.pop())

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for one batch. The engine keeps one per batch slot rather than taking
        one from the pool each time: the pool resets a connection it takes back, which costs a
        round trip per batch. A connection that broke is handed back for the pool to discard."""
        conn = self._idle.pop() if self._idle else await self._new_connection()
        broken = False
        try:
            yield conn
        except (asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError, OSError):
            broken = True
            raise
        finally:
            if broken or conn.is_closed() or len(self._idle) >= self._concurrency:
                await self._pool.release(conn)
            else:
                self._idle.append(conn)

    async def _new_connection(self) -> asyncpg.Connection:
        """A connection from the pool, made ready for batches (given back if that fails)."""
        conn = await self._pool.acquire()
        try:
            await store.prepare_batch_session(conn, self._side_statements)
        except BaseException:
            await self._pool.release(conn)
            raise
        return conn

    async def submit(self, command: Command) -> Transfer:
        """Run one command; return its transfer or raise its LedgerError."""
        for name, _ in command.rows:
            if name not in self._side_statements:
                raise InvalidTransfer(f"no side statement '{name}' was given to the ledger")
        key = (command.client_id, command.key)
        first = self._inflight.get(key)
        if first is not None:
            return await answer_duplicate(command, first)
        if self._collector is None:
            raise RuntimeError("Ledger.start() was not called")
        pending = Pending(command, asyncio.get_running_loop().create_future())
        self._inflight[key] = pending
        self._waiting.append(pending)
        if len(self._waiting) == 1:
            self._wakeup.set()
        if len(self._waiting) >= self._batch_max:
            self._full.set()
        try:
            return await pending.future
        finally:
            if self._inflight.get(key) is pending:
                del self._inflight[key]

    async def _collect(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._waiting:
                continue
            if len(self._waiting) < self._batch_max and self._window_s > 0:
                # The window ends when it is full or its time is up, whichever comes first (a
                # timer rather than wait_for, which would make a task for every batch).
                timer = asyncio.get_running_loop().call_later(self._window_s, self._full.set)
                try:
                    await self._full.wait()
                finally:
                    timer.cancel()
            await self._slots.acquire()
            batch = self._take_batch()
            self._full.clear()
            if not batch:
                # Everything waiting touches an account a running batch holds; the running
                # batch wakes the collector when it finishes.
                self._slots.release()
                continue
            if self._waiting:
                self._wakeup.set()
            task = asyncio.create_task(self._execute(batch))
            self._running[task] = batch
            task.add_done_callback(self._finished)

    def _take_batch(self) -> list[Pending]:
        """Up to batch_max waiting commands, in arrival order, that can run beside the batches
        already running.

        A batch locks its accounts until it commits, so a second batch that shares an account
        would only wait for the first. Instead the second batch takes the commands whose accounts
        no running batch holds, and PostgreSQL works on both at once. A command passed over
        blocks its accounts for the rest of the scan, so that commands on one account still run
        in arrival order. Posts, voids and reversals, whose accounts are not known before their
        transfer is read, go only into a batch that runs alone.
        """
        held = self._held
        # With batch_max 1 the engine is the plain one-transaction-per-transfer path that the
        # benchmark compares against: there every transaction just waits for its locks.
        if not held or self._batch_max == 1:
            batch = self._waiting[: self._batch_max]
            del self._waiting[: self._batch_max]
        else:
            batch, rest = [], []
            blocked: set[int] = set()
            for pending in self._waiting:
                legs = pending.command.legs
                if (
                    len(batch) < self._batch_max
                    and legs
                    and not any(leg.account_id in held or leg.account_id in blocked for leg in legs)
                ):
                    batch.append(pending)
                else:
                    rest.append(pending)
                    blocked.update(leg.account_id for leg in legs)
            self._waiting = rest
        for pending in batch:
            for leg in pending.command.legs:
                held[leg.account_id] = held.get(leg.account_id, 0) + 1
        return batch

    async def _after_commit(self, conn: asyncpg.Connection, balances: list[AccountBalance]) -> None:
        """Run the after-commit hooks before the batch's callers get their answers, so that a
        caller who reads a balance or their history after a transfer sees it. Bounded: a slow
        or failing hook (the balance cache, when Redis is down) is logged and costs at most its
        time limit."""
        try:
            async with asyncio.timeout(AFTER_COMMIT_TIMEOUT_S):
                if self.after_commit_position is None:
                    assert self.after_commit is not None
                    await self.after_commit(balances)
                    return
                # Read after the COMMIT returned: at or past the end of its WAL record. Read
                # while the balances go to their cache, to keep the batch's time short.
                reading = conn.fetchval(store.WAL_POSITION)
                if self.after_commit is not None:
                    position, _ = await asyncio.gather(reading, self.after_commit(balances))
                else:
                    position = await reading
                await self.after_commit_position([b.account_id for b in balances], position)
        except Exception as error:  # noqa: BLE001 - money is committed; the hook is a courtesy
            log.warning("after-commit hook failed: %r", error)

    def _finished(self, task: asyncio.Task[None]) -> None:
        held = self._held
        for pending in self._running.pop(task):
            for leg in pending.command.legs:
                if held[leg.account_id] == 1:
                    del held[leg.account_id]
                else:
                    held[leg.account_id] -= 1
        self._slots.release()
        if self._waiting:
            self._wakeup.set()

    async def _execute(self, batch: list[Pending]) -> None:
        try:
            await self._execute_with_retries(batch)
        except Exception as error:
            log.exception("ledger batch failed")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)

    async def _execute_with_retries(self, batch: list[Pending]) -> None:
        self.batches += 1
        self.commands += len(batch)
        todo = batch
        attempt = 0
        while todo:
            try:
                async with self._connection() as conn:
                    await self._run(conn, todo)
                return
            except store.KeysTaken:
                todo = await answer_from_storage(self._pool, todo)
            except RETRYABLE as error:
                attempt += 1
                if attempt > self._retries:
                    # The database's own words (a deadlock, a serialization failure) are for
                    # the log, not for the client, who is told only to retry.
                    log.warning("ledger batch contended after %d tries: %s", attempt, error)
                    busy = LedgerBusy(
                        f"the ledger stayed busy after {attempt} tries; retry with the same "
                        "idempotency key"
                    )
                    for pending in todo:
                        if not pending.future.done():
                            pending.future.set_exception(busy)
                    return
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
            except (asyncpg.PostgresError, store.UnstorableText):
                if len(todo) == 1:
                    raise
                # A statement failed for a reason no retry fixes. Run each command alone so
                # that the one at fault fails and its neighbours do not. Each answers its own
                # caller: every run is waited for, so that none is answered before it ends.
                runs = [self._execute_with_retries([p]) for p in todo]
                ends = await asyncio.gather(*runs, return_exceptions=True)
                for pending, end in zip(todo, ends, strict=True):
                    if isinstance(end, Exception):
                        log.error("ledger command failed", exc_info=end)
                        if not pending.future.done():
                            pending.future.set_exception(end)
                    elif isinstance(end, BaseException):
                        raise end from None
                return

    async def _run(self, conn: asyncpg.Connection, batch: list[Pending]) -> None:
        commands = [p.command for p in batch]
        targets: dict[int, Target] = {}
        referenced = {c.target_id for c in commands if c.target_id is not None}
        await conn.execute("BEGIN")
        try:
            loaded = await store.load_transfers(conn, referenced) if referenced else {}
            account_ids = sorted(
                {leg.account_id for c in commands for leg in c.legs}
                | {e.account_id for t in loaded.values() for e in t.entries}
            )
            accounts, now = await store.lock_accounts(conn, account_ids)
            if loaded:
                targets = await store.load_targets(conn, loaded)
            await self._reserve_ids(conn, len(commands))
            result = apply_batch(commands, accounts, targets, self._take_id, now)
            outcomes = [
                (
                    c.client_id,
                    c.key,
                    c.request_hash,
                    o.id if isinstance(o, Transfer) else None,
                    o.to_dict() if isinstance(o, LedgerError) else None,
                )
                for c, o in zip(commands, result.outcomes, strict=True)
            ]
            # Each side row's statement also learns whether the ledger refused its command.
            # With the outbox off, the events commands carry are dropped here.
            side_rows = [
                (name, (*values, isinstance(outcome, LedgerError)))
                for c, outcome in zip(commands, result.outcomes, strict=True)
                for name, values in c.rows
                if self._outbox or name != outbox.WITH_COMMAND_NAME
            ]
            if self._outbox:
                side_rows += self._events(result.transfers)
            await store.write_batch_and_commit(
                conn, result.transfers, accounts.values(), outcomes, now, side_rows
            )
        except BaseException:
            # The pool rolls back too when it takes the connection back; this makes it prompt.
            if not conn.is_closed():
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await conn.execute("ROLLBACK")
            raise
        if self.after_commit is not None or self.after_commit_position is not None:
            await self._after_commit(
                conn,
                [
                    AccountBalance(a.id, a.posted, a.pending_debits, a.pending_credits, a.version)
                    for a in accounts.values()
                    if a.changed
                ],
            )
        for pending, outcome in zip(batch, result.outcomes, strict=True):
            if pending.future.done():
                continue  # its caller gave up (cancelled); the others still get their answers
            if isinstance(outcome, Transfer):
                pending.future.set_result(outcome)
            else:
                pending.future.set_exception(outcome)

    @staticmethod
    def _events(transfers: list[Transfer]) -> list[SideRow]:
        """The outbox rows of a batch's completed transfers (`transfer.completed`, keyed by
        the debited account, whose lock the batch holds: its events' ids follow its commits).
        Only the ids and times go: the statement reads the rest from the rows the batch
        writes. A
        transfer of more than two legs (an add-funds with its fee) is told from its largest
        debit to its largest credit, with every leg in `legs`; a two-leg one has `legs` null."""
        name = outbox.TRANSFERS_COMPLETED_NAME
        rows: list[SideRow] = []
        for t in transfers:
            if t.kind in COMPLETING:
                debit = min(t.entries, key=lambda e: e.amount_minor).account_id
                credit = max(t.entries, key=lambda e: e.amount_minor).account_id
                legs = None
                if len(t.entries) > 2:
                    legs = orjson.dumps(
                        [
                            {
                                "account_id": str(e.account_id),
                                "amount": outbox.amount(e.amount_minor, e.currency),
                            }
                            for e in t.entries
                        ]
                    ).decode()
                rows.append((name, (t.id, debit, credit, legs, t.created_at)))
        return rows

    async def _reserve_ids(self, conn: asyncpg.Connection, count: int) -> None:
        while self._id_end - self._next_id < count:
            start = await conn.fetchval("SELECT nextval('transfer_ids')")
            if start == self._id_end:
                self._id_end += ID_BLOCK
            else:
                self._next_id, self._id_end = start, start + ID_BLOCK

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1
