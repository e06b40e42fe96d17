"""Message formats: what a body's bytes say, for the pages, search, grouping and replay (ADR 0051).

`decode.decode()` reads one body — compression, the Confluent wire format (Avro, Protobuf, JSON Schema through a
schema registry), local schemas mapped by pattern, CloudEvents in binary and structured mode — and returns a plain
JSON-safe record that says which decoder read it (and which schema id and version), or why none could. Nothing here
trusts a body: every value it returns is data for auto-escaping templates. No Django in the codecs; `formats.ingest`
is the one place that touches a dead-letter row.
"""
