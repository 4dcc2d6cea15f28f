"""Pure: the query of a listing (window, sort, page) as the SDK defines it, applied to records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_LIMIT = 50
# FaxesApi.list_faxes (SDK 3.0.5): "Valid values: date, from, to, comment, pages".
SORT_FIELDS = ("date", "from", "to", "comment", "pages")
ORDERS = ("asc", "desc")


class QueryError(ValueError):
    """A listing parameter the API would refuse with 400."""


@dataclass(frozen=True)
class ListingQuery:
    after: datetime | None
    before: datetime | None
    sort_by: str
    order: str | None  # None: the listing's default direction
    offset: int
    limit: int | None  # None: every record


def parse_listing_query(params: Mapping[str, str], *, default_limit: int | None) -> ListingQuery:
    """The listing parameters of `params`; QueryError naming the first bad one."""
    sort_by = params.get("sort_by", "date")
    if sort_by not in SORT_FIELDS:
        raise QueryError(f"'sort_by' {sort_by!r} is not one of {list(SORT_FIELDS)}")
    order = params.get("order")
    if order is not None and order not in ORDERS:
        raise QueryError(f"'order' {order!r} is not one of {list(ORDERS)}")
    limit = _integer(params.get("limit"), "limit", minimum=1)
    if limit is not None and limit > MAX_LIMIT:
        raise QueryError(f"'limit' must be at most {MAX_LIMIT}")
    return ListingQuery(
        after=_time(params.get("after"), "after"),
        before=_time(params.get("before"), "before"),
        sort_by=sort_by,
        order=order,
        offset=_integer(params.get("offset"), "offset", minimum=0) or 0,
        limit=default_limit if limit is None else limit,
    )


def listed(
    records: Sequence[T],
    query: ListingQuery,
    *,
    submitted_at: Callable[[T], datetime],
    sort_keys: Mapping[str, Callable[[T], Any]],
    default_order: str,
) -> list[T]:
    """The page of `records` (oldest first) that `query` asks for."""
    window = [
        record
        for record in records
        if (query.after is None or submitted_at(record) >= query.after)
        and (query.before is None or submitted_at(record) <= query.before)
    ]
    # A stable sort keeps ties in the order the records were made; desc reverses it all.
    key = sort_keys[query.sort_by]
    ordered = sorted(window, key=key)
    if (query.order or default_order) == "desc":
        ordered.reverse()
    end = None if query.limit is None else query.offset + query.limit
    return ordered[query.offset : end]


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        # Like the SDK's own check, only the leading 'YYYY-MM-DD HH:mm:ss' counts.
        return datetime.strptime(value[:19], TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise QueryError(f"'{name}' {value!r} is not 'YYYY-MM-DD HH:mm:ss'") from None


def _integer(value: str | None, name: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) < minimum:
        raise QueryError(f"'{name}' must be an integer >= {minimum}")
    return int(value)
