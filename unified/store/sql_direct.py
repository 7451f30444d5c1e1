"""Running the store's prebuilt statements on the driver's cursor, without SQLAlchemy's per-execution work.

SQLAlchemy compiles a statement once and caches it, but every execution still builds an execution context, result
metadata and row objects: several times what a short statement costs SQLite itself. The statements every task goes
through (compare-and-set updates, reads by key) run here instead: compiled once per statement for the store's
dialect, then handed to the DBAPI cursor of the connection's open transaction. Statements with expanding IN lists
(rendered per call) go through SQLAlchemy as before. Driver errors are raised as SQLAlchemy's DBAPIError subclasses,
and a lost connection is invalidated, so the store handles errors the same way on both paths.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

MAX_STATEMENTS = 512

# per statement: (SQL text, positional parameter names or None for named ones, the compiled form), or None when it
# has parameters rendered per call
_Compiled = tuple[str, tuple[str, ...] | None, sa.sql.compiler.Compiled] | None


class DirectStatements:
    """Executes prebuilt Core statements straight on the DBAPI cursor of a SQLAlchemy connection."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self._error = dialect.loaded_dbapi.Error
        self._compiled: dict[sa.Executable, _Compiled] = {}

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

    def rows(self, conn: sa.Connection, stmt: sa.Executable, params: dict[str, Any]) -> list[Any]:
        """Run a statement that returns rows; all of them, as tuples in the statement's column order."""
        compiled = self._compile(stmt)
        if compiled is None:
            return list(conn.execute(stmt, params))
        cursor = self._run(conn, compiled, params)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    def _compile(self, stmt: sa.Executable) -> _Compiled:
        try:
            return self._compiled[stmt]
        except KeyError:
            pass
        compiled = stmt.compile(dialect=self.dialect)  # type: ignore[attr-defined]
        entry: _Compiled = None
        if self._plain(compiled):
            names = tuple(compiled.positiontup) if compiled.positional else None
            entry = (compiled.string, names, compiled)
        if len(self._compiled) >= MAX_STATEMENTS:  # statements built per call would otherwise pile up here
            self._compiled.clear()
        self._compiled[stmt] = entry
        return entry

    def _plain(self, compiled: Any) -> bool:
        """True if the driver's values need no conversion either way and no parameter is rendered per call."""
        if compiled.post_compile_params or compiled.literal_execute_params or compiled._bind_processors:
            return False
        try:
            return all(
                column.type._cached_result_processor(self.dialect, None) is None for column in compiled._result_columns
            )
        except TypeError:  # a processor that depends on the type the server reports (PostgreSQL numbers)
            return False

    def _run(
        self, conn: sa.Connection, compiled: tuple[str, tuple[str, ...] | None, Any], params: dict[str, Any]
    ) -> Any:
        sql, names, form = compiled
        values = form.construct_params(params)
        arguments: Any = values if names is None else tuple(values[name] for name in names)
        fairy = conn.connection
        cursor = fairy.cursor()
        try:
            cursor.execute(sql, arguments)
        except self._error as exc:
            cursor.close()
            lost = self.dialect.is_disconnect(exc, fairy.dbapi_connection, cursor)
            if lost:
                conn.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                sql, arguments, exc, self._error, connection_invalidated=lost, dialect=self.dialect
            ) from exc
        return cursor
