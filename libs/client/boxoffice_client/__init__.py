"""A typed client for the Boxoffice booking API: httpx, sync and async, safe retries.

from boxoffice_client import BoxofficeClient

with BoxofficeClient("http://127.0.0.1:8000", api_key) as boxoffice:
    booking = boxoffice.create_booking(showtime_id, ["C3", "C4"], "ada@example.com")
    boxoffice.pay(booking.id)
"""

from boxoffice_client.async_client import AsyncBoxofficeClient
from boxoffice_client.calls import RowSpec
from boxoffice_client.client import BoxofficeClient
from boxoffice_client.errors import (
    ActiveHoldsLimitError,
    ApiError,
    AuthenticationError,
    AuthenticationThrottledError,
    BadRequestError,
    BoxofficeError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    Problem,
    RateLimitedError,
    SeatsUnavailableError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    UnprocessableEntityError,
)
from boxoffice_client.models import (
    Booking,
    BookingSeat,
    Customer,
    Health,
    Page,
    Payment,
    PaymentSummary,
    Price,
    Screen,
    ScreenRow,
    ScreenSeat,
    ScreenSummary,
    SeatMap,
    SeatState,
    Showtime,
    Venue,
)
from boxoffice_client.pagination import aiterate, iterate
from boxoffice_client.retry import NO_RETRIES, RetryPolicy

__all__ = [
    "NO_RETRIES",
    "ActiveHoldsLimitError",
    "ApiError",
    "AsyncBoxofficeClient",
    "AuthenticationError",
    "AuthenticationThrottledError",
    "BadRequestError",
    "Booking",
    "BookingSeat",
    "BoxofficeClient",
    "BoxofficeError",
    "ConflictError",
    "Customer",
    "Health",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "Payment",
    "PaymentSummary",
    "PermissionDeniedError",
    "Price",
    "Problem",
    "RateLimitedError",
    "RetryPolicy",
    "RowSpec",
    "Screen",
    "ScreenRow",
    "ScreenSeat",
    "ScreenSummary",
    "SeatMap",
    "SeatState",
    "SeatsUnavailableError",
    "ServerError",
    "ServiceUnavailableError",
    "Showtime",
    "TransportError",
    "UnprocessableEntityError",
    "Venue",
    "aiterate",
    "iterate",
]
