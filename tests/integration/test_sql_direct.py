"""Prebuilt statements run on the driver's cursor: same results as through SQLAlchemy, same errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from unified.store.sql_direct import DirectStatements

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("size", sa.Double, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
)
BY_ID = sa.select(things.c.id, things.c.size).where(things.c.id == sa.bindparam("_id"))
DONE_BY_ID = sa.select(things.c.done).where(things.c.id == sa.bindparam("_id"))
GROW = sa.update(things).where(things.c.id == sa.bindparam("_id")).values(size=things.c.size + sa.bindparam("_by"))
SET_DONE = sa.update(things).where(things.c.id == sa.bindparam("_id")).values(done=sa.bindparam("_done"))
BY_IDS = sa.select(things.c.id).where(things.c.id.in_(sa.bindparam("_ids", expanding=True))).order_by(things.c.id)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'direct.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        rows = [{"id": "a", "size": 1.5, "done": True}, {"id": "b", "size": 2.0, "done": False}]
        conn.execute(sa.insert(things), rows)
    yield engine
    engine.dispose()


def test_rows_and_rowcounts_match_sqlalchemy(engine: sa.Engine) -> None:
    direct = DirectStatements(engine.dialect)
    with engine.begin() as conn:
        assert direct.rows(conn, BY_ID, {"_id": "a"}) == [("a", 1.5)]
        assert direct.rowcount(conn, GROW, {"_id": "a", "_by": 1.0}) == 1
        assert direct.rowcount(conn, GROW, {"_id": "zz", "_by": 1.0}) == 0
        assert conn.execute(BY_ID, {"_id": "a"}).one() == ("a", 2.5)


def test_parameters_are_converted_as_sqlalchemy_would(engine: sa.Engine) -> None:
    direct = DirectStatements(engine.dialect)
    assert direct._compile(SET_DONE) is not None, "bind processors do not send a statement back to SQLAlchemy"
    with engine.begin() as conn:
        assert direct.rowcount(conn, SET_DONE, {"_id": "b", "_done": True}) == 1
        assert direct.rowcount(conn, GROW, {"_id": "b", "_by": 3}) == 1  # an int for a Double column
        assert conn.execute(sa.select(things.c.done, things.c.size).where(things.c.id == "b")).one() == (True, 5.0)


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://nobody@localhost/none"])  # never connected
def test_arguments_picked_by_key_are_those_sqlalchemy_builds(url: str) -> None:
    direct = DirectStatements(sa.create_engine(url).dialect)
    literal = sa.update(things).where(things.c.id == "a").values(size=sa.bindparam("_size"))  # a bind with a value
    for stmt, params in [(GROW, {"_id": "a", "_by": 3}), (SET_DONE, {"_id": "b", "_done": True}),
                         (literal, {"_size": 2}), (literal, {"_size": None})]:  # fmt: skip
        compiled = direct._compile(stmt)
        assert compiled is not None
        built = compiled.compiled.construct_params(params)
        for name, process in compiled.processors.items():
            built[name] = process(built[name]) if built[name] is not None else None
        expected = built if compiled.names is None else tuple(built[n] for n in compiled.names)
        assert direct._arguments(compiled, params) == expected
    assert direct._compile(GROW).keys is not None, "picked by key"
    assert direct._compile(literal).keys is None, "an anonymous bind (the literal) leaves it to construct_params"


def test_statements_that_need_sqlalchemy_still_go_through_it(engine: sa.Engine) -> None:
    direct = DirectStatements(engine.dialect)
    with engine.connect() as conn:
        assert [tuple(r) for r in direct.rows(conn, BY_IDS, {"_ids": ["b", "a"]})] == [("a",), ("b",)]  # expanding
        (done,) = direct.rows(conn, DONE_BY_ID, {"_id": "a"})[0]
    assert done is True, "SQLite stores booleans as 0/1: the result processor must run"


def test_driver_errors_come_out_as_sqlalchemy_errors(engine: sa.Engine) -> None:
    direct = DirectStatements(engine.dialect)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER no_growth BEFORE UPDATE ON things BEGIN SELECT RAISE(ABORT, 'frozen'); END"
        )
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError, match="frozen"):
        direct.rowcount(conn, GROW, {"_id": "a", "_by": 1.0})


def test_insert_many_converts_every_row_and_reports_clashes(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'many.db'}")  # transactions as the SQLite store runs them:
    sa.event.listen(engine, "connect", lambda dbapi, _record: setattr(dbapi, "isolation_level", None))
    sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))  # explicit BEGIN
    metadata.create_all(engine)
    direct = DirectStatements(engine.dialect)
    with engine.begin() as conn:
        direct.insert_many(conn, sa.insert(things), [{"id": "c", "size": 3, "done": True},
                                                     {"id": "d", "size": 4.25, "done": False}])  # fmt: skip
        rows = conn.execute(sa.select(things).order_by(things.c.id)).all()
        assert [tuple(r) for r in rows] == [("c", 3.0, True), ("d", 4.25, False)]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        direct.insert_many(conn, sa.insert(things), [{"id": "e", "size": 1, "done": True},
                                                     {"id": "c", "size": 1, "done": True}])  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(things)).scalar() == 2, "the clash rolled back"
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    from unified.store.sql import driver_url

    engine = sa.create_engine(driver_url(pg_url))
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_commit_with_sends_the_writes_and_the_commit_together_on_postgres(pg_engine: sa.Engine) -> None:
    direct = DirectStatements(pg_engine.dialect)
    with pg_engine.begin() as conn:
        conn.execute(sa.insert(things), [{"id": "a", "size": 1.0, "done": False}])
        direct.commit_with(conn, [(GROW, [{"_id": "a", "_by": 2}]), (SET_DONE, [{"_id": "a", "_done": True}])])
        assert conn.connection.driver_connection.info.transaction_status == 0, "the transaction ended there"
    with pg_engine.connect() as conn:
        assert tuple(conn.execute(sa.select(things)).one()) == ("a", 3.0, True)


def test_a_failed_write_sent_with_the_commit_keeps_nothing_of_the_transaction(pg_engine: sa.Engine) -> None:
    direct = DirectStatements(pg_engine.dialect)
    clash = (sa.insert(things), [{"id": "a", "size": 0.0, "done": False}])
    with pytest.raises(sa.exc.IntegrityError), pg_engine.begin() as conn:
        conn.execute(sa.insert(things), [{"id": "a", "size": 1.0, "done": False}])
        direct.commit_with(conn, [(GROW, [{"_id": "a", "_by": 1}]), clash])
    with pg_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(things)).scalar() == 0


def test_sqlite_rowcounts_of_a_batch_keep_it_when_every_row_matches_and_redo_it_row_by_row_when_not(
    engine: sa.Engine,
) -> None:
    direct = DirectStatements(engine.dialect)
    with engine.begin() as conn:
        assert direct.rowcounts(conn, GROW, [{"_id": "a", "_by": 1.0}, {"_id": "b", "_by": 1.0}]) == [1, 1]
        # "zz" matches nothing: the one executemany is undone and the rows run one by one, each applied once
        assert direct.rowcounts(conn, GROW, [{"_id": "a", "_by": 10.0}, {"_id": "zz", "_by": 1.0}]) == [1, 0]
        assert conn.execute(sa.select(things.c.id, things.c.size).order_by(things.c.id)).all() == [
            ("a", 12.5),
            ("b", 3.0),
        ]


def test_sqlite_rowcounts_of_a_failing_batch_change_nothing_and_leave_the_transaction_usable(
    engine: sa.Engine,
) -> None:
    direct = DirectStatements(engine.dialect)
    set_size = sa.update(things).where(things.c.id == sa.bindparam("_id")).values(size=sa.bindparam("_size"))
    with engine.begin() as conn:
        with pytest.raises(sa.exc.IntegrityError):  # size is NOT NULL: b's row fails after a's changed
            direct.rowcounts(conn, set_size, [{"_id": "a", "_size": 7.0}, {"_id": "b", "_size": None}])
        assert conn.execute(sa.select(things.c.size).order_by(things.c.id)).scalars().all() == [1.5, 2.0]
        assert direct.rowcount(conn, GROW, {"_id": "b", "_by": 1.0}) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(things.c.size).order_by(things.c.id)).scalars().all() == [1.5, 3.0]
