"""``unified db upgrade``: create the database or bring its schema to the newest migration."""

from __future__ import annotations

import typer

from unified import config
from unified.ui.commands.common import Db, Json, done, session

app = typer.Typer(help="The database: upgrade its schema.", no_args_is_help=True)


@app.command()
def upgrade(db: Db = None, as_json: Json = False) -> None:
    """Create the database if needed and apply every migration up to the newest (safe to run again)."""
    from unified.store import migrations  # deferred: loads SQLAlchemy

    if config.service_database_url(db).startswith("memory"):
        done("the memory store has no schema to upgrade", {"database": "memory://", "revision": None}, as_json)
        return
    with session(db, create=True) as s:
        where = repr(s.store)  # opening a SQL store migrates it to the head revision; repr hides a password
    done(f"{where} is at revision {migrations.HEAD}", {"database": where, "revision": migrations.HEAD}, as_json)
