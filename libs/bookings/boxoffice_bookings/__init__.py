"""The booking lifecycle, once: hold, start payment, settle, cancel, refund, expire, reconcile.

The booking API's routes, its webhook route and the reaper's tasks are thin callers of the
service modules here (`holds`, `payments`, `cancellation`, `refunds`, `expiry`,
`reconciliation`); every statement they run is in `repository`. Errors are the typed
`errors.LifecycleError`s, which the API turns into problem+json answers.
"""
