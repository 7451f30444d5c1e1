"""The SQL store's workflows and their frozen versions.

A mixin of :class:`unified.store.sql.SqlStore`, using its transaction and row helpers. ``freeze_draft`` runs in one
transaction holding the workflow's row (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises
writers anyway), so two starts of one changed draft freeze it once; the draft's JSON is copied into the version
row as it is stored, not decoded and encoded again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from unified.errors import ValidationError, name_taken, not_found
from unified.graph import graph_hash
from unified.store.records import VersionRecord, WorkflowRecord, WorkflowSummary
from unified.store.schema import CHUNK, VERSION_BY_NUMBER, VERSIONS, WORKFLOWS, Codec, runs, versions, workflows
from unified.utils import chunks

T = TypeVar("T")

DRAFT_FOR_FREEZE = (
    sa.select(workflows.c.name, workflows.c.tasks, workflows.c.current_version, workflows.c.draft_hash)
    .where(workflows.c.workflow_id == sa.bindparam("_key"))
    .with_for_update()
)
VERSION_HASH = sa.select(versions.c.hash).where(
    versions.c.workflow_id == sa.bindparam("_key"), versions.c.number == sa.bindparam("_number")
)
LAST_VERSION = sa.select(sa.func.max(versions.c.number)).where(versions.c.workflow_id == sa.bindparam("_key"))
WORKFLOW_NAMED = (
    WORKFLOWS.select.where(workflows.c.name == sa.bindparam("_name"))
    .order_by(workflows.c.created_at, workflows.c.seq)
    .limit(1)
)
WORKFLOW_FOR_UPDATE = WORKFLOWS.by_key.with_for_update()
WORKFLOWS_BY_IDS = WORKFLOWS.select.where(workflows.c.workflow_id.in_(sa.bindparam("_ids", expanding=True)))


def _summaries(drafts: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """The summary columns of the workflows in ``_ids``, the length of each draft counted by the database, with the
    newest run of each (one walk of ``ix_runs_workflow`` per workflow, not a query each)."""
    c, newer = workflows.c, runs.alias("newer")
    newest = (
        sa.select(newer.c.seq)
        .where(newer.c.workflow_id == c.workflow_id)
        .order_by(newer.c.created_at.desc(), newer.c.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    columns = (c.workflow_id, c.name, c.description, c.current_version, sa.func.json_array_length(drafts))
    return (
        sa.select(*columns, runs.c.run_id, runs.c.state, runs.c.created_at)
        .select_from(workflows.outerjoin(runs, runs.c.seq == newest))
        .where(c.workflow_id.in_(sa.bindparam("_ids", expanding=True)))
    )


# SQLite's JSON functions take the text as it is; PostgreSQL's need it cast
SUMMARIES = {
    "postgresql": _summaries(sa.cast(workflows.c.tasks, postgresql.JSON)),
    "sqlite": _summaries(workflows.c.tasks),
}


def _in_order(ids: list[str], read: Callable[[list[str]], Iterable[tuple[str, T]]]) -> list[T]:
    """What ``read`` finds for ``ids`` (given at most CHUNK of them at a time) by id, in the order of ``ids``; ids
    it does not find are left out."""
    found: dict[str, T] = {}
    for chunk in chunks(list(dict.fromkeys(ids)), CHUNK):
        found.update(read(chunk))
    return [found[i] for i in ids if i in found]


WORKFLOW_NAMES = sa.select(workflows.c.workflow_id, workflows.c.name).order_by(workflows.c.created_at, workflows.c.seq)
POINT_AT_VERSION = (
    sa.update(workflows)
    .where(workflows.c.workflow_id == sa.bindparam("_key"))
    .values(current_version=sa.bindparam("_number"))
)


class SqlWorkflows:
    """Workflows (their drafts and draft hashes) and the versions frozen from them, as rows of their tables."""

    if TYPE_CHECKING:  # provided by SqlStore

        def _tx(self, write: bool = True) -> AbstractContextManager[sa.Connection]: ...
        def _one(self, codec: Codec[Any], what: str, stmt: sa.Select[Any], params: dict[str, Any]) -> Any: ...
        def _all(self, codec: Codec[Any], stmt: sa.Select[Any], params: dict[str, Any] | None = None) -> list[Any]: ...
        def _upsert(self, codec: Codec[Any], record: Any, keep: tuple[str, ...] = ()) -> None: ...
        def _one_row(
            self, codec: Codec[Any], key: str, what: str, stmt: sa.Update | sa.Delete | None = None
        ) -> None: ...

    def put_workflow(self, workflow: WorkflowRecord) -> None:
        """Insert or replace a workflow (its ``draft_hash`` computed here; a replace keeps its ``current_version``)."""
        stored = dataclasses.replace(workflow, draft_hash=graph_hash(workflow.tasks), current_version=None)
        try:
            self._upsert(WORKFLOWS, stored, keep=("current_version",))
        except sa.exc.IntegrityError as exc:  # the unique name (revision 0005); a row's own id is replaced
            other = self.find_workflow(workflow.name)
            raise name_taken(workflow.name, other.workflow_id if other is not None else None) from exc

    def get_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow with this id."""
        return self._one(WORKFLOWS, f"workflow {workflow_id!r}", WORKFLOWS.by_key, {"_key": workflow_id})

    def lock_workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow with this id, its row locked ``FOR UPDATE`` (SQLite's write transaction is the lock)."""
        with self._tx():
            return self._one(WORKFLOWS, f"workflow {workflow_id!r}", WORKFLOW_FOR_UPDATE, {"_key": workflow_id})

    def list_workflows(self) -> list[WorkflowRecord]:
        """Every workflow, oldest first."""
        return self._all(WORKFLOWS, WORKFLOWS.select.order_by(workflows.c.created_at, workflows.c.seq))

    def find_workflow(self, name: str) -> WorkflowRecord | None:
        """The workflow named ``name`` (names are unique), or None (reads no other workflow's specs)."""
        found = self._all(WORKFLOWS, WORKFLOW_NAMED, {"_name": name})
        return found[0] if found else None

    def get_workflows(self, workflow_ids: list[str]) -> list[WorkflowRecord]:
        """The workflows with these ids that exist, in the order given."""
        return _in_order(
            workflow_ids,
            lambda chunk: ((w.workflow_id, w) for w in self._all(WORKFLOWS, WORKFLOWS_BY_IDS, {"_ids": chunk})),
        )

    def workflow_summaries(self, workflow_ids: list[str]) -> list[WorkflowSummary]:
        """The summaries of the workflows with these ids that exist, in the order given (the database counts each
        draft's specs: a page of large workflows decodes none of them here)."""
        with self._tx(write=False) as conn:
            statement = SUMMARIES[conn.dialect.name]
            return _in_order(
                workflow_ids,
                lambda chunk: ((row[0], WorkflowSummary(*row)) for row in conn.execute(statement, {"_ids": chunk})),
            )

    def workflow_names(self) -> dict[str, str]:
        """Every workflow's name by its id, oldest first (reads no specs)."""
        with self._tx(write=False) as conn:
            return {workflow_id: name for workflow_id, name in conn.execute(WORKFLOW_NAMES)}

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove a workflow and its versions (its runs stay as history)."""
        with self._tx() as conn:
            conn.execute(sa.delete(versions).where(versions.c.workflow_id == workflow_id))
            self._one_row(WORKFLOWS, workflow_id, "workflow")

    def freeze_draft(self, workflow_id: str, created_at: float) -> VersionRecord:
        """The version matching the workflow's draft: the current one if their hashes are equal, else the draft
        frozen now as the next number, which the workflow then points at (the draft stays as it is)."""
        with self._tx() as conn:
            row = conn.execute(DRAFT_FOR_FREEZE, {"_key": workflow_id}).one_or_none()
            if row is None:
                raise not_found(f"workflow {workflow_id!r}")
            name, text, current, digest = row
            if text in (None, "null", "[]"):  # as to_json writes an empty draft
                raise ValidationError(f"workflow {name!r} has no tasks: add tasks before running it")
            specs = None  # decoded only for a new version: an unchanged draft's specs are the current version's
            if digest is None:  # a row stored before revision 0004
                specs = VERSIONS.decode("tasks", text)
                digest = graph_hash(specs)
            if current is not None:
                params = {"_key": workflow_id, "_number": current}
                if conn.execute(VERSION_HASH, params).scalar() == digest:
                    return self._one(
                        VERSIONS, f"version {current} of workflow {workflow_id!r}", VERSION_BY_NUMBER, params
                    )
            # after the highest: a pointer lost to a put that raced a start (before put kept it) must not reuse one
            number = (conn.execute(LAST_VERSION, {"_key": workflow_id}).scalar() or 0) + 1
            row_of_version = {"workflow_id": workflow_id, "number": number, "hash": digest, "tasks": text,
                              "created_at": created_at}  # fmt: skip
            conn.execute(sa.insert(versions), row_of_version)
            conn.execute(POINT_AT_VERSION, {"_key": workflow_id, "_number": number})
        if specs is None:
            specs = VERSIONS.decode("tasks", text)
        return VersionRecord(workflow_id, number, digest, specs, created_at)

    def get_version(self, workflow_id: str, number: int) -> VersionRecord:
        """One version of a workflow."""
        params = {"_key": workflow_id, "_number": number}
        return self._one(VERSIONS, f"version {number} of workflow {workflow_id!r}", VERSION_BY_NUMBER, params)

    def list_versions(self, workflow_id: str) -> list[VersionRecord]:
        """Every version of a workflow, by number."""
        return self._all(
            VERSIONS, VERSIONS.select.where(versions.c.workflow_id == workflow_id).order_by(versions.c.number)
        )
