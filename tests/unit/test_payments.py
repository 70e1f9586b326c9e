"""The payment providers: the test provider, and Razorpay's API over a real local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from boxoffice_payments import PaymentProviderError, PaymentStatus, WebhookSignatureError
from boxoffice_payments.local_provider import LocalPaymentProvider
from boxoffice_payments.razorpay import RazorpayProvider

from tests.support.razorpay_server import KEY_ID, KEY_SECRET, WEBHOOK_SECRET, FakeRazorpay


@pytest.fixture
def razorpay() -> Iterator[FakeRazorpay]:
    server = FakeRazorpay().start()
    yield server
    server.stop()


@pytest.fixture
def provider(razorpay: FakeRazorpay) -> Iterator[RazorpayProvider]:
    provider = RazorpayProvider(KEY_ID, KEY_SECRET, WEBHOOK_SECRET, base_url=razorpay.base_url)
    yield provider
    provider.close()


def test_razorpay_order_capture_refund_round_trip(
    razorpay: FakeRazorpay, provider: RazorpayProvider
) -> None:
    order = provider.create_order(amount_minor=40000, currency="INR", receipt="BK123")
    assert order.status is PaymentStatus.PENDING
    assert order.reference.startswith("order_")
    assert order.checkout == {"key_id": KEY_ID, "order_id": order.reference}
    assert provider.fetch_status(order.reference).status is PaymentStatus.PENDING

    payment = razorpay.pay(order.reference)
    state = provider.fetch_status(order.reference)
    assert state.status is PaymentStatus.AUTHORIZED
    assert state.payment_reference == payment["id"]

    captured = provider.capture(payment["id"], 40000, "INR")
    assert captured.status is PaymentStatus.SUCCEEDED
    assert provider.fetch_status(order.reference).status is PaymentStatus.SUCCEEDED

    refund = provider.refund(payment["id"], 40000, idempotency_key="refund-1")
    assert refund.reference.startswith("rfnd_")
    assert refund.amount_minor == 40000
    assert razorpay.state.payments[payment["id"]]["status"] == "refunded"
    # Asked again with the same key (a caller that crashed before recording the refund), the
    # provider's refund is found, not made twice.
    assert provider.refund(payment["id"], 40000, idempotency_key="refund-1") == refund
    assert [r["id"] for r in razorpay.state.refunds.values()] == [refund.reference]


def test_razorpay_errors_become_provider_errors(
    razorpay: FakeRazorpay, provider: RazorpayProvider
) -> None:
    with pytest.raises(PaymentProviderError, match="atleast"):
        provider.create_order(amount_minor=5, currency="INR", receipt="BK1")
    razorpay.fail_next_posts(1)
    with pytest.raises(PaymentProviderError, match="500"):
        provider.create_order(amount_minor=500, currency="INR", receipt="BK1")
    wrong_key = RazorpayProvider(KEY_ID, "wrong", WEBHOOK_SECRET, base_url=razorpay.base_url)
    with pytest.raises(PaymentProviderError, match="401"):
        wrong_key.create_order(amount_minor=500, currency="INR", receipt="BK1")
    unreachable = RazorpayProvider(KEY_ID, KEY_SECRET, "x", base_url="http://127.0.0.1:9")
    with pytest.raises(PaymentProviderError):
        unreachable.fetch_status("order_x")


def test_razorpay_webhook_signature_is_verified_over_the_raw_body(
    provider: RazorpayProvider,
) -> None:
    payment = {"id": "pay_1", "order_id": "order_1", "status": "captured", "amount": 900}
    body, headers = FakeRazorpay.webhook("payment.captured", payment)
    event = provider.parse_webhook(body, headers)
    assert event.status is PaymentStatus.SUCCEEDED
    assert (event.order_reference, event.payment_reference) == ("order_1", "pay_1")
    assert event.amount_minor == 900
    assert event.currency is None  # the payload names none here

    # Issue 14, finding 3: the id duplicates are recognised by is covered by the signature.
    # The same signed body with a new (unsigned) X-Razorpay-Event-Id header is the same event.
    replayed = provider.parse_webhook(body, {**headers, "X-Razorpay-Event-Id": "evt_replayed"})
    assert replayed.event_id == event.event_id
    assert event.event_id != headers["X-Razorpay-Event-Id"]

    # The same JSON re-serialised is a different body: the signature must not match.
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    with pytest.raises(WebhookSignatureError):
        provider.parse_webhook(reformatted, headers)
    with pytest.raises(WebhookSignatureError):
        provider.parse_webhook(body, {**headers, "X-Razorpay-Signature": "0" * 64})
    with pytest.raises(WebhookSignatureError):
        provider.parse_webhook(body, {"X-Razorpay-Event-Id": "evt_1"})


def test_unknown_razorpay_events_decode_without_a_status(provider: RazorpayProvider) -> None:
    body, headers = FakeRazorpay.webhook("payment.dispute.created", {"id": "pay_2"})
    assert provider.parse_webhook(body, headers).status is None


def test_a_provider_without_a_webhook_secret_accepts_no_webhook(razorpay: FakeRazorpay) -> None:
    provider = RazorpayProvider(KEY_ID, KEY_SECRET, "", base_url=razorpay.base_url)
    body = b"{}"
    with pytest.raises(WebhookSignatureError):
        provider.parse_webhook(body, {"X-Razorpay-Signature": ""})


def test_checkout_signature_binds_order_and_payment(provider: RazorpayProvider) -> None:
    import hashlib
    import hmac

    good = hmac.new(KEY_SECRET.encode(), b"order_1|pay_1", hashlib.sha256).hexdigest()
    assert provider.verify_checkout_signature("order_1", "pay_1", good)
    assert not provider.verify_checkout_signature("order_1", "pay_2", good)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("succeeded", PaymentStatus.SUCCEEDED),
        ("failed", PaymentStatus.FAILED),
        ("pending", PaymentStatus.PENDING),
    ],
)
def test_test_provider_settles_with_the_callers_outcome(
    outcome: str, status: PaymentStatus
) -> None:
    provider = LocalPaymentProvider()
    order = provider.create_order(amount_minor=100, currency="INR", receipt="R", outcome=outcome)
    assert order.status is status
    # Any process can ask about it: the state travels in the reference.
    state = LocalPaymentProvider().fetch_status(order.reference)
    assert state.status is status
    assert (state.amount_minor, state.currency) == (order.amount_minor, order.currency)


def test_test_provider_rejects_unknown_outcomes_and_bad_signatures() -> None:
    provider = LocalPaymentProvider("secret")
    with pytest.raises(PaymentProviderError):
        provider.create_order(amount_minor=1, currency="INR", receipt="R", outcome="maybe")
    body = b'{"id": "e1", "event": "payment.succeeded", "order_id": "o"}'
    assert provider.parse_webhook(body, {"X-Test-Signature": provider.sign(body)}).status == (
        PaymentStatus.SUCCEEDED
    )
    with pytest.raises(WebhookSignatureError):
        provider.parse_webhook(body, {"X-Test-Signature": LocalPaymentProvider("x").sign(body)})


def test_the_local_provider_answers_a_repeated_refund_key_with_the_same_refund() -> None:
    provider = LocalPaymentProvider()
    first = provider.refund("test_pay_1", 500, idempotency_key="k-1")
    assert provider.refund("test_pay_1", 500, idempotency_key="k-1") == first
    assert provider.refund("test_pay_1", 500, idempotency_key="k-2") != first
