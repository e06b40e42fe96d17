"""Transactional outbox. Services call `outbox.publish(...)` inside `transaction.atomic()`."""


def publish(*args, **kwargs):
    # Imported on call: this package is imported before Django's app registry is ready.
    from outbox.publishing import publish as _publish

    return _publish(*args, **kwargs)
