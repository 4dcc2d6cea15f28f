"""FAX.PLUS API client: typed methods and typed outcomes."""

from mailfax.faxplus.client import (
    LIST_PAGE,
    AmbiguousApiError,
    ApiError,
    FaxApi,
    FaxPlusClient,
    FaxRecord,
    NotFoundApiError,
    OutboxRecord,
    PermanentApiError,
    SentListing,
    TransientApiError,
    choose_from_number,
    format_api_time,
    parse_api_time,
    sending_numbers,
)

__all__ = [
    "LIST_PAGE",
    "AmbiguousApiError",
    "ApiError",
    "FaxApi",
    "FaxPlusClient",
    "FaxRecord",
    "NotFoundApiError",
    "OutboxRecord",
    "PermanentApiError",
    "SentListing",
    "TransientApiError",
    "choose_from_number",
    "format_api_time",
    "parse_api_time",
    "sending_numbers",
]
