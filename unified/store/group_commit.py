"""Group commit on one SQLite connection: write transactions of one process's threads share their COMMIT.

SQLite lets one writer in at a time and, with ``synchronous=FULL``, each COMMIT waits for a sync of the file. The
threads of a process take turns on one connection (see ``SqliteStore``). A thread whose transaction is done while
others wait for the turn does not commit: it hands the open transaction on and waits. The next thread runs its
own transaction inside it as a savepoint, so a failure undoes only its own writes, and so on; the last one commits
for everybody (at most ``MAX_MEMBERS`` transactions, so the first one's wait is bounded). Nobody returns before
the COMMIT that holds its writes succeeded; if it fails, every member gets a StoreError and none of their writes is
kept. A producer queueing tasks and a worker's reporter applying outcomes then pay one sync between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from unified.errors import StoreError

MAX_MEMBERS = 64
SAVEPOINT = "unified_member"


class _Group:
    """The transactions sharing one open SQLite transaction, and how its COMMIT went."""

    __slots__ = ("done", "error", "members")

    def __init__(self) -> None:
        self.members = 0
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """The write turn of one connection (made by ``connect``); ``transaction()`` is one member of a group."""

    def __init__(self, connect: Callable[[], sa.Connection], timeout: float, where: str) -> None:
        self._connect = connect
        self._timeout = timeout
        self._where = where  # the database, for error messages
        self._conn: sa.Connection | None = None
        self._lock = threading.Lock()
        self._turn_free = threading.Condition(self._lock)
        self._committed = threading.Condition(self._lock)
        self._held = False
        self._waiting = 0  # threads waiting for the turn
        self._open: _Group | None = None  # the group whose transaction is open on the connection

    @contextmanager
    def turn(self) -> Iterator[sa.Connection]:
        """The connection, outside any transaction, for as long as the block runs (no group is open meanwhile)."""
        self._take_turn()
        try:
            if self._open is not None:  # finish the group first
                self._commit(self._open)
                self._take_turn()
            yield self._connection()
        finally:
            self._give_turn()

    def close(self) -> None:
        """Close the connection, once any group open on it is committed (a new one is made when next needed)."""
        if self._conn is None:
            return
        with self.turn() as conn:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction: its own, or a savepoint in the one another thread handed on; committed (maybe with
        others) before the block returns."""
        self._take_turn()
        group = self._open
        joined = group is not None
        try:
            if group is None:
                conn = self._connection()
                conn.begin()  # BEGIN IMMEDIATE (the store's begin hook)
                group = self._open = _Group()
            else:
                conn = self._conn  # type: ignore[assignment]  # never replaced while a group is open
                self._driver(conn, f"SAVEPOINT {SAVEPOINT}")
        except BaseException:
            if group is None:
                self._give_turn()
            else:
                self._end_turn(group, member=False)  # the others' transaction goes on
            raise
        try:
            yield conn
        except BaseException as exc:
            if not joined:  # the transaction holds only this one's writes
                self._rollback(group, None)
            elif self._undo_member(conn):
                self._end_turn(group, member=False)
            else:
                self._rollback(group, exc)  # the connection is broken: the whole group fails
            raise
        if joined:
            try:
                self._driver(conn, f"RELEASE {SAVEPOINT}")
            except BaseException as exc:
                self._rollback(group, exc)
                raise
        group.members += 1
        self._end_turn(group, member=True)

    # -- the turn ----------------------------------------------------------------------------------------
    def _take_turn(self) -> None:
        with self._lock:
            if self._held:
                self._waiting += 1
                try:
                    if not self._turn_free.wait_for(lambda: not self._held, self._timeout):
                        self._committed.notify_all()  # a member waiting on this one commits for itself
                        raise StoreError(f"no write turn on {self._where} within {self._timeout:.0f} s")
                finally:
                    self._waiting -= 1
            self._held = True

    def _give_turn(self) -> None:
        with self._lock:
            self._held = False
            self._turn_free.notify()

    def _end_turn(self, group: _Group, member: bool) -> None:
        """Hand the open transaction on to a waiting thread, or commit it; a member returns once it is committed."""
        with self._lock:
            if self._waiting and group.members < MAX_MEMBERS:
                self._held = False
                self._turn_free.notify()
                if not member:
                    return
                while not group.done:
                    if not self._held and not self._waiting and self._open is group:
                        self._held = True  # the one it was handed to gave up waiting: commit it here
                        break
                    self._committed.wait()
        if not group.done:
            self._commit(group)
        if member and group.error is not None:
            raise StoreError(
                f"the commit on {self._where} failed ({group.error}); nothing of this transaction was kept"
            ) from group.error

    def _connection(self) -> sa.Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self._conn = self._connect()
        return conn

    # -- ending a group or a member ----------------------------------------------------------------------
    def _commit(self, group: _Group) -> None:
        assert self._conn is not None
        try:
            self._conn.commit()
        except BaseException as exc:
            self._rollback(group, exc)
            return
        self._finish(group, None)

    def _rollback(self, group: _Group, error: BaseException | None) -> None:
        assert self._conn is not None
        try:
            self._conn.rollback()
        except BaseException:
            self._conn.invalidate()  # the connection is unusable: the next transaction makes a new one
        self._finish(group, error)

    def _finish(self, group: _Group, error: BaseException | None) -> None:
        with self._lock:
            group.done, group.error = True, error
            self._open = None
            self._held = False
            self._committed.notify_all()
            self._turn_free.notify()

    def _undo_member(self, conn: sa.Connection) -> bool:
        """Undo one member's writes and keep the others'; False if the connection could not."""
        try:
            self._driver(conn, f"ROLLBACK TO {SAVEPOINT}")
            self._driver(conn, f"RELEASE {SAVEPOINT}")
        except BaseException:
            return False
        return True

    @staticmethod
    def _driver(conn: sa.Connection, statement: str) -> Any:
        return conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
