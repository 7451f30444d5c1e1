"""Running the store's prebuilt statements on the driver's cursor, without SQLAlchemy's per-execution work.

SQLAlchemy compiles a statement once and caches it, but every execution still builds an execution context, result
metadata and row objects: several times what a short statement costs SQLite itself. The statements every task goes
through (compare-and-set updates, reads by key) run here instead: compiled once per statement for the store's
dialect, then handed to the DBAPI cursor of the connection's open transaction. Statements with expanding IN lists
(rendered per call) go through SQLAlchemy as before. Parameters and results are converted with the processors
SQLAlchemy would use (the result ones chosen from the types the driver reports, on the first run). Driver errors
are raised as SQLAlchemy's DBAPIError subclasses, and a lost connection is invalidated, so the store handles errors
the same way on both paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import sqlalchemy as sa

MAX_STATEMENTS = 512
# psycopg's executemany enters pipeline mode, which costs about a round trip of its own: it pays from this many rows
# (measured on localhost: 2 rows as fast as two executes, 4 rows 1.8 times faster, 16 rows 4 times)
PIPELINE_MIN = 4
# psycopg's COPY streams rows to the server instead of executing a statement per row: 2,000 task rows in 30-35 ms
# against 63-82 for the pipelined executemany (localhost). A whole insert_tasks of 16 rows was faster without it
# (3.3-3.7 ms against 4.0-4.3: the seqs are read back in a statement of their own), of 64 rows faster with it
# (5.9-6.2 against 6.6-6.9)
COPY_MIN = 64
ALL_OR_EACH = "unified_all_or_each"  # the savepoint of a batched compare-and-set on SQLite (rowcounts)
BLOCK = "unified_block"  # the savepoint of Store.savepoint


class _Statement(NamedTuple):
    """A statement compiled once for the dialect: its SQL text and how to turn parameters into driver arguments."""

    sql: str
    names: tuple[str, ...] | None  # positional parameter order; None for named parameters
    compiled: Any  # sqlalchemy's Compiled, for construct_params
    processors: dict[str, Any]  # bind processors by parameter name (SQLite's float conversion of Double columns)
    # when every parameter is named as the caller's key (no escaping, no computed values): the driver's arguments
    # in order, and the processors by position; None: construct_params builds them
    keys: tuple[str, ...] | None
    processed: tuple[tuple[int, Any], ...]
    converters: list[Any]  # result processors by column, found from the driver's types on the first run (SQLite
    # booleans, for one); empty until then, [None, ...] when no column needs one


class DirectStatements:
    """Executes prebuilt Core statements straight on the DBAPI cursor of a SQLAlchemy connection."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self._error = dialect.loaded_dbapi.Error
        self._compiled: dict[Any, _Statement | None] = {}  # by statement (and inserted columns); None: SQLAlchemy

    def rowcount(self, conn: sa.Connection, stmt: sa.Executable, params: dict[str, Any]) -> int:
        """Run a write statement; how many rows it changed."""
        compiled = self._compile(stmt)
        if compiled is None:
            return conn.execute(stmt, params).rowcount
        cursor = self._run(conn, compiled, params)
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    def rowcounts(self, conn: sa.Connection, stmt: sa.Executable, rows: list[dict[str, Any]]) -> list[int]:
        """Run a write statement that changes at most one row per parameter set (a compare-and-set by key) once per
        parameter set; how many rows each changed. psycopg sends them all at once (``executemany`` returning each
        result: one round trip); SQLite runs them in one ``executemany`` when every one matches (see
        :meth:`_at_most_one_each`); elsewhere they run one by one."""
        compiled = self._compile(stmt)
        sqlite = compiled is not None and len(rows) > 1 and self.dialect.name == "sqlite"
        if sqlite and self._at_most_one_each(conn, compiled, rows):  # type: ignore[arg-type]
            return [1] * len(rows)
        if compiled is None or len(rows) < PIPELINE_MIN or self.dialect.driver != "psycopg":
            return [self.rowcount(conn, stmt, row) for row in rows]
        cursor = self._run(conn, compiled, rows, many=True, returning=True)
        counts = []
        try:
            while True:
                counts.append(cursor.rowcount)
                if not cursor.nextset():
                    return counts
        finally:
            cursor.close()

    def rows(self, conn: sa.Connection, stmt: sa.Executable, params: dict[str, Any]) -> list[Any]:
        """Run a statement that returns rows; all of them, as tuples in the statement's column order."""
        compiled = self._compile(stmt)
        if compiled is None:
            return list(conn.execute(stmt, params))
        cursor = self._run(conn, compiled, params)
        try:
            return self._converted(compiled, cursor, cursor.fetchall())
        finally:
            cursor.close()

    def _at_most_one_each(self, conn: sa.Connection, statement: _Statement, rows: list[dict[str, Any]]) -> bool:
        """On SQLite, for a statement that changes at most one row per parameter set (a compare-and-set by key):
        run all of ``rows`` in one ``executemany`` and keep it if every one changed its row (True); otherwise undo
        it (False) for the caller to run them one by one and learn which did.

        SQLite's ``executemany`` reports only the sum of the rows changed, and the usual batch of outcomes all
        match, so one C loop replaces a Python-level execute per row (W3: 7,800 of them per run). A savepoint around
        it undoes a batch with a mismatch, inside whatever transaction is open."""
        driver = conn.connection.driver_connection
        driver.execute(f"SAVEPOINT {ALL_OR_EACH}")  # type: ignore[union-attr]
        try:
            cursor = self._run(conn, statement, rows, many=True)
        except BaseException:
            with contextlib.suppress(self._error):  # a lost connection: the caller's error handling has it
                driver.execute(f"ROLLBACK TO {ALL_OR_EACH}")  # type: ignore[union-attr]
                driver.execute(f"RELEASE {ALL_OR_EACH}")  # type: ignore[union-attr]
            raise
        try:
            every = cursor.rowcount == len(rows)
        finally:
            cursor.close()
        if not every:
            driver.execute(f"ROLLBACK TO {ALL_OR_EACH}")  # type: ignore[union-attr]
        driver.execute(f"RELEASE {ALL_OR_EACH}")  # type: ignore[union-attr]
        return every

    @contextlib.contextmanager
    def savepoint(self, conn: sa.Connection) -> Iterator[None]:
        """A SAVEPOINT around the block, rolled back to if it raises, sent on the driver's connection: through
        SQLAlchemy (``begin_nested``) each end of it costs an execution of its own, several times the statement."""
        driver = conn.connection.driver_connection
        self._plain_statement(conn, f"SAVEPOINT {BLOCK}")
        try:
            yield
        except BaseException:
            with contextlib.suppress(self._error):  # a lost connection: the caller's error handling has it
                driver.execute(f"ROLLBACK TO {BLOCK}")  # type: ignore[union-attr]
                driver.execute(f"RELEASE {BLOCK}")  # type: ignore[union-attr]
            raise
        self._plain_statement(conn, f"RELEASE {BLOCK}")

    def _plain_statement(self, conn: sa.Connection, sql: str) -> None:
        try:
            conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]
        except self._error as exc:
            raise self._translated(conn, exc, sql, None) from exc

    def insert_returning(self, conn: sa.Connection, stmt: sa.Insert, rows: list[dict[str, Any]]) -> list[Any]:
        """Run an INSERT ... RETURNING of ``rows`` (each with the keys of the first); the row each returned, in order.
        psycopg sends them all at once (``executemany`` returning each result: one round trip); elsewhere they go
        through SQLAlchemy (SQLite's executemany cannot return rows)."""
        compiled = self._compile(stmt, tuple(rows[0]))
        if compiled is None or self.dialect.driver != "psycopg":
            return [tuple(row) for row in conn.execute(stmt, rows)]
        cursor = self._run(conn, compiled, rows, many=True, returning=True)
        found: list[Any] = []
        try:
            while True:
                found.extend(self._converted(compiled, cursor, cursor.fetchall()))
                if not cursor.nextset():
                    return found
        finally:
            cursor.close()

    def _converted(self, statement: _Statement, cursor: Any, rows: list[Any]) -> list[Any]:
        converters = statement.converters or self._converters(statement, cursor.description)
        if not any(converters):
            return rows
        return [
            tuple(v if c is None or v is None else c(v) for c, v in zip(converters, row, strict=True)) for row in rows
        ]

    def insert_many(self, conn: sa.Connection, stmt: sa.Insert, rows: list[dict[str, Any]]) -> None:
        """Run an INSERT of ``rows`` (each with the keys of the first) through the driver's ``executemany``, or as a
        COPY from COPY_MIN rows on where :attr:`copies` (a submit's dependency rows, a batch's log lines)."""
        if len(rows) >= COPY_MIN and self.copies:
            self.copy_in(conn, stmt, rows)
        else:
            self._many(conn, stmt, rows, tuple(rows[0]))

    def copy_in(self, conn: sa.Connection, stmt: sa.Insert, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (each with the keys of the first) with ``COPY ... FROM STDIN``: psycopg only (see
        :attr:`copies`). Nothing is returned, and a constraint violation fails the whole statement."""
        columns = tuple(rows[0])
        processors = self._compile(stmt, columns).processors  # type: ignore[union-attr]  # an INSERT: never None
        processed = [(i, processors[column]) for i, column in enumerate(columns) if column in processors]
        quote = self.dialect.identifier_preparer
        names = ", ".join(quote.quote(column) for column in columns)
        sql = f"COPY {quote.format_table(stmt.table)} ({names}) FROM STDIN"  # type: ignore[arg-type]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(sql) as copy:
                for row in rows:
                    values = [row[column] for column in columns]
                    for i, process in processed:
                        if values[i] is not None:
                            values[i] = process(values[i])
                    copy.write_row(values)
        except self._error as exc:
            raise self._translated(conn, exc, sql, None, cursor) from exc
        finally:
            cursor.close()

    @property
    def copies(self) -> bool:
        """Whether :meth:`copy_in` works here (psycopg on PostgreSQL)."""
        return self.dialect.driver == "psycopg"

    def update_many(self, conn: sa.Connection, stmt: sa.Update, rows: list[dict[str, Any]]) -> None:
        """Run an UPDATE once per parameter set of ``rows`` through the driver's ``executemany``."""
        self._many(conn, stmt, rows, None)

    def _many(self, conn: sa.Connection, stmt: Any, rows: list[dict[str, Any]], keys: tuple[str, ...] | None) -> None:
        compiled = self._compile(stmt, keys)
        if compiled is None:
            conn.execute(stmt, rows)
            return
        if len(rows) == 1 or (len(rows) < PIPELINE_MIN and self.dialect.driver == "psycopg"):
            for row in rows:
                self._run(conn, compiled, row).close()
            return
        self._run(conn, compiled, rows, many=True).close()

    def commit_with(self, conn: sa.Connection, writes: list[tuple[sa.Executable, list[dict[str, Any]]]]) -> None:
        """Run ``writes`` (statements whose results nobody reads, each with its parameter sets) and COMMIT the
        transaction, in one round trip: psycopg's pipeline mode sends them together. The COMMIT is sent as a
        statement, so the driver knows the transaction has ended and SQLAlchemy's commit that follows finds nothing
        left to do. An error raises like one of ``_run`` and leaves the transaction failed, for the caller's
        rollback."""
        plain = []
        for stmt, rows in writes:
            if (compiled := self._compile(stmt)) is None:
                conn.execute(stmt, rows)  # rendered per call: through SQLAlchemy, before the pipeline
            else:
                plain.append((compiled, rows))
        fairy = conn.connection
        sent = [(compiled.sql, [self._arguments(compiled, row) for row in rows]) for compiled, rows in plain]
        try:
            with fairy.driver_connection.pipeline(), fairy.cursor() as cursor:  # type: ignore[union-attr]
                for sql, arguments in sent:
                    cursor.executemany(sql, arguments)
                cursor.execute("COMMIT")
        except self._error as exc:  # raised once the server answered: any of them may have failed
            statements = "; ".join([sql for sql, _ in sent] + ["COMMIT"])
            raise self._translated(conn, exc, statements, [arguments for _, arguments in sent]) from exc

    def _converters(self, statement: _Statement, description: Any) -> list[Any]:
        """The result processor of each column for the types the driver reported, as SQLAlchemy would pick them."""
        columns = statement.compiled._result_columns
        statement.converters[:] = [
            column.type._cached_result_processor(self.dialect, field[1])
            for column, field in zip(columns, description or (), strict=False)
        ]
        return statement.converters

    def _compile(self, stmt: sa.Executable, columns: tuple[str, ...] | None = None) -> _Statement | None:
        key = stmt if columns is None else (stmt, columns)
        try:
            return self._compiled[key]
        except KeyError:
            pass
        compiled = stmt.compile(dialect=self.dialect, column_keys=columns)  # type: ignore[attr-defined]
        entry = None
        if self._plain(compiled):
            names = tuple(compiled.positiontup) if compiled.positional else None
            processors = dict(compiled._bind_processors)
            keys = self._keys(compiled, names)
            processed = tuple((i, processors[k]) for i, k in enumerate(keys or ()) if k in processors)
            entry = _Statement(compiled.string, names, compiled, processors, keys, processed, [])
        if len(self._compiled) >= MAX_STATEMENTS:  # a guard: callers pass prebuilt statements, not ones built per call
            self._compiled.clear()
        self._compiled[key] = entry
        return entry

    @staticmethod
    def _plain(compiled: Any) -> bool:
        """True if no parameter is rendered per call (values are converted both ways here, as SQLAlchemy would)."""
        return not compiled.post_compile_params and not compiled.literal_execute_params

    @staticmethod
    def _keys(compiled: Any, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """The parameters' keys in the driver's order, if each is the name the statement binds it by."""
        binds = compiled.binds
        if compiled.escaped_bind_names or any(b.key != n or b.callable is not None for n, b in binds.items()):
            return None
        return names if names is not None else tuple(binds)

    @staticmethod
    def _arguments(statement: _Statement, params: dict[str, Any]) -> Any:
        """The driver's arguments for ``params``: picked by key, which is five times faster than SQLAlchemy's
        ``construct_params`` for a row of twenty columns; that builds them when a bind's value is not among them."""
        if (keys := statement.keys) is not None:
            try:
                picked = [params[key] for key in keys]
            except KeyError:
                pass
            else:
                for i, process in statement.processed:
                    if picked[i] is not None:
                        picked[i] = process(picked[i])
                return tuple(picked) if statement.names is not None else dict(zip(keys, picked, strict=True))
        values = statement.compiled.construct_params(params)
        for name, process in statement.processors.items():
            if values.get(name) is not None:
                values[name] = process(values[name])
        return values if statement.names is None else tuple(values[name] for name in statement.names)

    def _run(
        self, conn: sa.Connection, statement: _Statement, params: Any, many: bool = False, returning: bool = False
    ) -> Any:
        """Execute on a cursor of ``conn``'s connection; ``many``: ``params`` is a list, one execution each (with
        ``returning``, psycopg keeps each one's result)."""
        sql = statement.sql
        arguments = [self._arguments(statement, p) for p in params] if many else self._arguments(statement, params)
        fairy = conn.connection
        cursor = fairy.cursor()
        try:
            if many:
                cursor.executemany(sql, arguments, **({"returning": True} if returning else {}))
            else:
                cursor.execute(sql, arguments)
        except self._error as exc:
            cursor.close()
            raise self._translated(conn, exc, sql, arguments, cursor) from exc
        return cursor

    def _translated(self, conn: sa.Connection, exc: Exception, sql: str, arguments: Any, cursor: Any = None) -> Any:
        """A driver error as SQLAlchemy raises it (a DBAPIError subclass); a lost connection is invalidated."""
        lost = self.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        return sa.exc.DBAPIError.instance(
            sql, arguments, exc, self._error, connection_invalidated=lost, dialect=self.dialect
        )
