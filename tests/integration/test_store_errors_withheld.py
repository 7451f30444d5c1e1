"""A store failure tells API clients and web pages what happened in general, what to do and a reference; the driver's
text (host, port, user, database) goes to the server's log under that reference only."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import Api
from tests.integration.test_web import sign_in
from unified.errors import StoreConflict, StoreError
from unified.store.sql_errors import database_errors

WHERE = "postgresql://orders_app@db.internal.example:6543/orders_prod"
SECRETS = ("db.internal.example", "6543", "orders_app", "orders_prod", "nonexistent-folder", "unable to open")


def fail_like_a_lost_database(*args: Any, **kwargs: Any) -> None:
    """What a store verb raises when its database is gone: the driver's own error, translated by the store."""
    with database_errors(WHERE):
        sa.create_engine("sqlite:////nonexistent-folder/unified.db").connect()


def test_the_driver_error_is_really_there_for_the_operator() -> None:
    with pytest.raises(StoreError) as raised:
        fail_like_a_lost_database()
    assert all(secret in str(raised.value) for secret in SECRETS[:4]), "the CLI and the log show the full text"


def test_an_api_client_gets_a_reference_and_the_log_gets_the_details(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(api.services.store, "list_runs", fail_like_a_lost_database)
    with caplog.at_level(logging.ERROR, logger="unified.api"):
        answer = api.call("GET", "/runs")
    assert answer.status_code == 503
    error = answer.json()["error"]
    reference = error["details"]["reference"]
    assert error["code"] == "store_error" and "retry in a moment" in error["message"] and reference in error["message"]
    assert not [secret for secret in SECRETS if secret in answer.text], answer.text
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and all(secret in logged[0].getMessage() for secret in SECRETS[:4])
    assert logged[0].exc_info is not None, "the traceback and the driver's error are logged too"


def test_a_web_page_gets_the_same_general_message(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sign_in(api, "viewer")
    monkeypatch.setattr(api.services.store, "list_runs", fail_like_a_lost_database)
    page = client.get("/ui/runs")
    assert page.status_code == 503 and "retry in a moment" in page.text and "reference" in page.text
    assert not [secret for secret in SECRETS if secret in page.text]


def test_a_deadlock_broken_says_to_send_the_request_again(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def deadlocked(*args: Any, **kwargs: Any) -> None:
        raise StoreConflict(f"the database {WHERE} aborted the transaction (deadlock detected); run it again")

    monkeypatch.setattr(api.services.store, "list_runs", deadlocked)
    error = api.call("GET", "/runs").json()["error"]
    assert error["code"] == "store_conflict" and "send it again" in error["message"]
    assert "db.internal.example" not in error["message"] and error["details"]["reference"] in error["message"]


def test_an_unexpected_error_answers_with_a_reference_too(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"bug while talking to {WHERE}")

    monkeypatch.setattr(api.services.store, "list_runs", broken)
    with caplog.at_level(logging.ERROR, logger="unified.api"):
        answer = api.call("GET", "/runs")
    assert answer.status_code == 500 and "db.internal.example" not in answer.text
    reference = answer.json()["error"]["details"]["reference"]
    assert any(reference in r.getMessage() and r.exc_info for r in caplog.records)
