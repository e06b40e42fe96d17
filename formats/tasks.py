from celery import shared_task


@shared_task(name="formats.tasks.refresh_catalogue")
def refresh_catalogue() -> dict:
    from formats import catalogue

    result = catalogue.refresh()
    while result["outbox"] >= catalogue.BATCH or result["dead_letters"] >= catalogue.BATCH:
        result = catalogue.refresh()  # a backlog: catch up in this run, a batch per transaction
    return result
