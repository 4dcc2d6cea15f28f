"""FAX.PLUS API client: typed methods and typed outcomes."""

from mailfax.faxplus.client import (
    AmbiguousApiError,
    ApiError,
    FaxApi,
    FaxPlusClient,
    FaxRecord,
    NotFoundApiError,
    PermanentApiError,
    TransientApiError,
    choose_from_number,
)

__all__ = [
    "AmbiguousApiError",
    "ApiError",
    "FaxApi",
    "FaxPlusClient",
    "FaxRecord",
    "NotFoundApiError",
    "PermanentApiError",
    "TransientApiError",
    "choose_from_number",
]
