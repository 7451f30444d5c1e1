"""How a SQL store's verbs report the driver's errors: a conflict to run again, a database away, or as raised."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from unified.errors import StoreConflict, StoreError
from unified.store.sql_errors import database_errors


class DriverError(Exception):
    def __init__(self, text: str, sqlstate: str | None = None) -> None:
        super().__init__(text)
        self.sqlstate = sqlstate


def raised_in_block(exc: BaseException) -> BaseException:
    with pytest.raises(BaseException) as caught, database_errors("db at host/x"):
        raise exc
    return caught.value


def test_a_deadlock_or_serialization_failure_is_a_conflict_to_run_again() -> None:
    for state in ("40P01", "40001"):
        driver = DriverError("deadlock detected", sqlstate=state)
        found = raised_in_block(sa.exc.DBAPIError("UPDATE ...", {}, driver))  # type: ignore[arg-type]
        assert isinstance(found, StoreConflict) and "run it again" in str(found) and "db at host/x" in str(found)
        assert found.__cause__ is not None and found.__cause__.orig is driver  # type: ignore[attr-defined]


def test_a_database_that_cannot_be_used_is_a_store_error_naming_it() -> None:
    found = raised_in_block(sa.exc.OperationalError("SELECT 1", {}, DriverError("connection refused")))  # type: ignore[arg-type]
    assert isinstance(found, StoreError) and not isinstance(found, StoreConflict)
    assert "db at host/x could not be used (connection refused)" in str(found)


def test_other_errors_pass_through_unchanged() -> None:
    integrity = sa.exc.IntegrityError("INSERT ...", {}, DriverError("UNIQUE constraint failed"))  # type: ignore[arg-type]
    assert raised_in_block(integrity) is integrity
    plain = ValueError("not the database's")
    assert raised_in_block(plain) is plain
    with database_errors("db"):
        pass  # nothing raised: nothing to translate
