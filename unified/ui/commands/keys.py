"""``unified keys create|list|revoke``: API keys of the REST API, written straight into the database.

Only the key's hash is stored; ``create`` prints the key once. Anyone who can open the database can manage keys,
which is how an operator recovers access to a server whose admin keys are lost.
"""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import typer

from unified.ui.commands.common import Db, Json, done, emit, parse_time, session

app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)

COLUMNS = [
    ("key_id", "id"),
    ("name", "name"),
    ("role", "role"),
    ("owner", "owner"),
    ("created_at", "created"),
    ("expires_at", "expires"),
    ("last_used_at", "last used"),
    ("revoked_at", "revoked"),
]


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. ci-pipeline.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    owner: Annotated[str | None, typer.Option(help="Who holds the key.")] = None,
    expires: Annotated[str | None, typer.Option(help="When it stops working (ISO-8601); default never.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from unified.auth import ApiKeys, key_dict  # deferred: auth loads the web stack

    until = parse_time(expires, "--expires")
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)  # as POST /api-keys reads it, not in this machine's zone
    with session(db, create=True) as s:
        record, key = ApiKeys(s.store, s.tasks.clock).create(name, role, until.timestamp() if until else None, owner)
    done(f"API key {record.key_id} ({record.role}) created; shown once, keep it:\n{key}",
         {**key_dict(record), "key": key}, as_json)  # fmt: skip


@app.command("list")
def list_keys(db: Db = None, as_json: Json = False) -> None:
    """Every key's public fields (never a secret), oldest first."""
    from unified.auth import ApiKeys, key_dict

    with session(db) as s:
        rows = [key_dict(r) for r in ApiKeys(s.store, s.tasks.clock).list()]
    emit(rows, COLUMNS, as_json, "API keys")


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`unified keys list`).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Revoke a key at once (idempotent)."""
    from unified.auth import ApiKeys, key_dict

    with session(db) as s:
        record = ApiKeys(s.store, s.tasks.clock).revoke(key_id)
    done(f"API key {key_id} ({record.name}) revoked", key_dict(record), as_json)
