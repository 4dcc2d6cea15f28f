"""Schema versions: an ordered list of steps, a version table, and the start-up check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import Column, Integer, MetaData, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from mailfax.store.schema import blob_chunks, blobs_in_progress, faxplus_facts, metadata


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[AsyncConnection], Awaitable[None]]


async def _initial_schema(conn: AsyncConnection) -> None:
    await conn.run_sync(metadata.create_all)


async def _blob_chunks(conn: AsyncConnection) -> None:
    # checkfirst: step 1 creates the schema as it is now, these tables included.
    for table in (blob_chunks, blobs_in_progress):
        await conn.run_sync(table.create, checkfirst=True)


async def _faxplus_facts(conn: AsyncConnection) -> None:
    await conn.run_sync(faxplus_facts.create, checkfirst=True)


# Append only: a released step is never edited, a change is a new step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "large mails stored in pieces", _blob_chunks),
    Migration(3, "what doctor --live-test learnt of the FAX.PLUS account", _faxplus_facts),
)
LATEST = MIGRATIONS[-1].version

_version_metadata = MetaData()
schema_version = Table(
    "schema_version", _version_metadata, Column("version", Integer, nullable=False)
)


class SchemaMismatch(Exception):
    """The database's schema is not the one this mailfax runs with; the message says the fix."""


async def current_version(conn: AsyncConnection) -> int:
    """0 for an empty database."""
    tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    if "schema_version" not in tables:
        return 0
    version = (await conn.execute(select(schema_version.c.version))).scalar()
    return int(version or 0)


async def upgrade(conn: AsyncConnection) -> list[Migration]:
    """Apply every pending step in this transaction; returns what was applied."""
    await conn.run_sync(_version_metadata.create_all)
    version = await current_version(conn)
    pending = [m for m in MIGRATIONS if m.version > version]
    for migration in pending:
        await migration.apply(conn)
    if pending:
        await conn.execute(schema_version.delete())
        await conn.execute(schema_version.insert().values(version=LATEST))
    return pending


def check_version(version: int) -> None:
    """Raise SchemaMismatch unless `version` is the one this code runs with."""
    if version < LATEST:
        raise SchemaMismatch(
            f"the database schema is version {version}, this mailfax needs {LATEST}. "
            "Fix: run `mailfax db upgrade` (with the same configuration)"
        )
    if version > LATEST:
        raise SchemaMismatch(
            f"the database schema is version {version}, newer than this mailfax ({LATEST}). "
            "Fix: upgrade mailfax on this machine to the version the other instances run"
        )
