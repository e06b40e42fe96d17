"""A logging filter that keeps the connections' secrets out of every log line (console.brokers.scrub).

Client libraries put what they were given into their messages and exceptions (an AMQP URL with its password, a
SASL failure naming the user and what it tried), and those reach the log through our own warnings and through the
libraries' loggers. Installed on the handlers in settings.LOGGING, so it sees every record that is written.
"""

import logging


class ScrubSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from console.brokers import scrub

        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose arguments do not format is the formatter's to report
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            # Formatted now, scrubbed, and left where the formatter looks first.
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True
