"""What only PostgreSQL offers the SQL store: NOTIFY when a task becomes claimable, and a LISTEN thread to hear it.

Every transaction that makes a task claimable (an insert of queued tasks, a move to ``queued`` or ``retrying``)
sends ``NOTIFY unified_tasks, '<queue>'`` (the statements are in schema.py); PostgreSQL delivers it at commit,
once per distinct payload, to every listening session of the database. :class:`Listener` holds one dedicated
autocommit connection in a daemon thread and calls back with the queue name; when the connection drops it
reconnects with backoff and calls back once with ``""`` (any queue), because notifications sent meanwhile are
lost. Listening is a wake-up, never the only way work is found: workers still poll, slowly.

A process learns of the work it makes claimable itself from its engine, at once, so its listener skips the
notifications its own store's sessions sent (:func:`track_sessions` keeps their backend pids); otherwise every
report of a worker would wake that worker's dispatcher for a claim that finds nothing. Notifications of room in a
limited queue (payload ``room:<queue>``) are delivered to every listener, the sender's included.

The store's sessions also plan the claim robustly (:func:`plan_claims_by_index`) and replace pooled connections the
server dropped (:func:`replace_dropped`).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

import psycopg
import sqlalchemy as sa

from unified.store.listener_thread import ListenerThread
from unified.store.schema import CHANNEL_SQL, ROOM

WAIT_SECONDS = 0.25  # how often the listener looks at its stop flag
IDLE_PING_SECONDS = 10.0  # a pooled connection idle this long is pinged before use


def track_sessions(engine: sa.Engine) -> set[int]:
    """The backend pids of ``engine``'s open connections, kept up to date as the pool opens and closes them."""
    pids: set[int] = set()

    def opened(dbapi_connection: psycopg.Connection[Any], record: Any) -> None:
        record.info["backend_pid"] = dbapi_connection.info.backend_pid
        pids.add(record.info["backend_pid"])

    def closed(_dbapi_connection: Any, record: Any, *_exception: Any) -> None:
        pids.discard(record.info.pop("backend_pid", None))

    sa.event.listen(engine, "connect", opened)
    for event in ("close", "invalidate", "soft_invalidate"):
        sa.event.listen(engine, event, closed)
    return pids


# planner settings for the store's sessions, each applied only where nobody set it (server, database, role, URL)
CLAIM_PLANNER_SETTINGS = (("enable_bitmapscan", "off"), ("random_page_cost", "1.1"))
# a session that stops in the middle of a transaction holds row locks that every other worker's lease expiry and
# limited claims wait on. A client machine that died or was cut off: the server's keepalives end its session within
# about 30 s (the system's default takes two hours). A client process frozen (stopped, a paused VM), whose kernel
# still answers: ended after 10 minutes idle in a transaction (the default is never); long enough for a user's
# TaskManager.batch() that waits on slow input between its calls
SESSION_SETTINGS = (
    ("tcp_keepalives_idle", "10"), ("tcp_keepalives_interval", "5"), ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "30000"), ("idle_in_transaction_session_timeout", "10min"),
)  # fmt: skip
_SET_UNCONFIGURED = (
    "SELECT set_config(name, wanted.value, false) FROM (VALUES {}) AS wanted(name, value) "
    "JOIN pg_settings USING (name) WHERE pg_settings.source = 'default'"
).format(", ".join(f"('{name}', '{value}')" for name, value in CLAIM_PLANNER_SETTINGS + SESSION_SETTINGS))
# libpq's, for a connection whose peer vanished (power loss, a cut network): a waiting read fails within about 30 s
# instead of hanging, so a worker notices it cannot renew its leases and stops its attempts; the URL's own win
CONNECTION_DEFAULTS = {
    "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 30_000,
}  # fmt: skip


def connection_defaults(url: sa.URL) -> dict[str, Any]:
    """CONNECTION_DEFAULTS less those ``url`` sets itself, as SQLAlchemy's ``connect_args``."""
    return {name: value for name, value in CONNECTION_DEFAULTS.items() if name not in url.query}


def plan_claims_by_index(engine: sa.Engine) -> None:
    """Make each new session of ``engine`` plan the claim as an ordered walk of its index, whatever the statistics
    (and end itself when idle in a transaction: SESSION_SETTINGS, in the same statement).

    The claim takes the first few queued tasks in index order (``ix_tasks_claim``). Until the table is analyzed
    with work in it (a new database, or a burst after quiet hours), the planner believes about 1% of the tasks are
    queued, so it reads every queued entry in a bitmap scan and sorts them, for each claim of a few tasks: with
    5,000 queued, 3 ms a claim instead of 0.03. A prepared claim keeps that plan for the life of the session. Worse,
    only an ordered index scan marks the entries of claimed tasks dead as it passes them; bitmap scans left them all
    in place, and claims read 1,400 (one claimer) to 11,900 (with a producer inserting beside it) entries each, a
    cost that grew with every task run. Without bitmap scans the planner had seq scans of the table left (27.9
    million rows read in a run of W5); a random page cost for data in memory or on SSD (1.1 instead of 4) makes the
    index walk the cheaper plan. A setting made for the server, the database, the role or in the URL is kept.
    """

    def connected(dbapi_connection: psycopg.Connection[Any], _record: Any) -> None:
        dbapi_connection.execute(_SET_UNCONFIGURED)
        dbapi_connection.commit()

    sa.event.listen(engine, "connect", connected)


def replace_dropped(engine: sa.Engine, idle_ping_seconds: float = IDLE_PING_SECONDS) -> None:
    """Make ``engine``'s pool replace connections the server has dropped, at checkout.

    A server that restarts or terminates a session closes its socket, which an idle client connection then sees
    as readable (an error message or end of file), so a zero-wait ``poll`` finds those without a round trip;
    only a connection idle for ``idle_ping_seconds`` (one a firewall may have cut silently) is pinged. This is
    SQLAlchemy's ``pool_pre_ping`` without its round trip on every checkout, which cost as much as the statement
    of a short read.
    """

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: psycopg.Connection[Any], record: Any, _proxy: Any) -> None:
        try:
            readable = _has_input(dbapi_connection.fileno())
            idle_since = record.info.get("idle_since")  # None for a connection just made
            if not readable and idle_since is not None and time.monotonic() - idle_since >= idle_ping_seconds:
                dbapi_connection.execute("SELECT 1")
                dbapi_connection.rollback()
        except (OSError, ValueError, psycopg.Error) as exc:
            raise sa.exc.DisconnectionError(f"pooled connection unusable: {exc}") from exc
        if readable:
            raise sa.exc.DisconnectionError("the server closed this pooled connection")

    sa.event.listen(engine, "checkin", checked_in)
    sa.event.listen(engine, "checkout", checkout)


def _has_input(fd: int) -> bool:
    """True if ``fd`` has data, end of file or an error waiting (poll: no FD_SETSIZE limit, unlike select)."""
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def libpq_url(url: sa.URL) -> str:
    """A URL libpq understands (no ``+psycopg`` driver name), password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener(ListenerThread):
    """A thread that LISTENs on its schema's channel (:data:`unified.store.schema.CHANNEL_SQL`) and calls
    ``callback(queue)`` for each notification."""

    def __init__(
        self,
        conninfo: str,
        callback: Callable[[str], None],
        safe_url: str,
        own_sessions: set[int] | None = None,
        on_room: Callable[[], None] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._own_sessions = own_sessions or set()  # notifications from these backends are this process's own
        self._on_room = on_room  # called first for each room payload (a limit may have changed)
        super().__init__(callback, safe_url, (psycopg.Error,), WAIT_SECONDS * 3, "unified-listener")

    def _serve(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10) as conn:
            channel = conn.execute(f"SELECT {CHANNEL_SQL}").fetchone()[0]  # type: ignore[index]
            conn.execute(f'LISTEN "{channel}"')
            self._connected()
            while not self._stopping.is_set():
                for notify in conn.notifies(timeout=WAIT_SECONDS):
                    if notify.payload.startswith(ROOM):
                        if self._on_room is not None:
                            self._on_room()
                        self._call(notify.payload[len(ROOM) :])
                    elif notify.pid not in self._own_sessions:
                        self._call(notify.payload)
