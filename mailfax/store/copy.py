"""Copies a whole store into another database (`mailfax db copy`), e.g. SQLite to PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select, text

from mailfax.store.schema import metadata
from mailfax.store.sql import SqlStore

BATCH = 500


class StoreNotEmpty(Exception):
    """The target already holds data; copying into it could mix two gateways' jobs."""


async def copy_store(source: SqlStore, target: SqlStore) -> dict[str, int]:
    """Copy every table, parents first, in one target transaction; returns rows per table.

    Stop the gateway first: jobs in flight would be copied with their leases."""
    counts: dict[str, int] = {}
    async with source.transaction() as src, target.transaction() as dst:
        for table in metadata.sorted_tables:
            if (await dst.execute(select(func.count()).select_from(table))).scalar_one():
                raise StoreNotEmpty(f"the target's {table.name} table is not empty")
        for table in metadata.sorted_tables:
            counts[table.name] = 0
            result = await src.stream(select(table))
            async for rows in result.partitions(BATCH):
                await dst.execute(table.insert(), [dict(row._mapping) for row in rows])
                counts[table.name] += len(rows)
        if target.dialect == "postgresql":
            # Rows came with their ids: move the id sequences past them.
            for table in metadata.sorted_tables:
                if "id" in table.c and table.c.id.autoincrement is True:
                    # Table names come from our own schema, not from input.
                    sql = (
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                        f"coalesce(max(id), 0) + 1, false) FROM {table.name}"
                    )
                    await dst.execute(text(sql))
    return counts
