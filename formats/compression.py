"""Compression inside a message body (not Kafka's batch compression, which librdkafka undoes): gzip, zstd, snappy and
lz4, named by a content-encoding header or recognised by their magic bytes. cramjam does the codecs.

A body is hostile: a few kilobytes can inflate to gigabytes. gzip is inflated by the standard library's zlib with a
cap on the output; the others through cramjam's streaming decompressors, stopped at the same cap.
"""

from __future__ import annotations

import zlib

import cramjam

MAX_INFLATED = 16 * 1024 * 1024  # a decompressed body larger than this is not decoded (shown compressed, reason given)

# Magic numbers: gzip (RFC 1952), zstd frame (RFC 8878), lz4 frame, snappy framing format's stream identifier.
MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\xff\x06\x00\x00sNaPpY", "snappy"),
)
# Content-encoding values as producers write them.
ENCODINGS = {
    "gzip": "gzip",
    "x-gzip": "gzip",
    "zstd": "zstd",
    "zstandard": "zstd",
    "snappy": "snappy",
    "x-snappy-framed": "snappy",
    "lz4": "lz4",
    "x-lz4": "lz4",
}
ENCODING_HEADERS = ("content-encoding", "contentencoding", "x-content-encoding")


# Largest inflation ratio of the codecs inflated whole (lz4: 255 per byte of a match length; snappy: a 64-byte copy
# in 3 bytes).
WHOLE = {"lz4": 255, "snappy": 22}


class TooLarge(ValueError):
    pass


def detect(body: bytes, headers: dict[str, bytes]) -> str | None:
    """The compression of `body`: the content-encoding header's when it names one, else by magic bytes."""
    for name, value in headers.items():
        if name.lower() in ENCODING_HEADERS:
            codec = ENCODINGS.get(bytes(value).decode("latin-1").strip().lower())
            if codec:
                return codec
    for magic, codec in MAGIC:
        if body.startswith(magic):
            return codec
    return None


def inflate(body: bytes, codec: str, limit: int = MAX_INFLATED) -> bytes:
    """The decompressed body; raises ValueError (TooLarge past `limit`) with what went wrong."""
    if codec == "gzip":
        d = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ValueError(f"gzip: {exc}") from None
        if len(out) > limit or d.unconsumed_tail:
            raise TooLarge(f"gzip inflates beyond {limit} bytes")
        if not d.eof:
            raise ValueError("gzip stream is truncated")
        return out
    if codec == "snappy" and not body.startswith(MAGIC[3][0]):
        size = cramjam.snappy.decompress_raw_len(body)  # a raw snappy block states its length first
        if size > limit:
            raise TooLarge(f"snappy inflates to {size} bytes, more than {limit}")
        return bytes(cramjam.snappy.decompress_raw(body))
    if codec == "zstd":
        return _capped(cramjam.zstd.Decompressor(), body, limit, "zstd")
    if codec in WHOLE:
        # cramjam's lz4 and snappy-framed decompressors take whole frames, not pieces; they inflate at most by a
        # known ratio, so a body too small to pass the cap is inflated at once and a larger one is not decoded.
        if len(body) * WHOLE[codec] > 4 * limit:
            raise TooLarge(f"a {codec} body of {len(body)} bytes could inflate beyond {limit} bytes; not decoded")
        try:
            out = bytes(getattr(cramjam, codec).decompress(body))
        except Exception as exc:  # noqa: BLE001 - cramjam's DecompressionError
            raise ValueError(f"{codec}: {exc}") from None
        if len(out) > limit:
            raise TooLarge(f"{codec} inflates beyond {limit} bytes")
        return out
    raise ValueError(f"unknown compression {codec}")


CHUNK = 1024  # compressed bytes fed at a time: the most one step can inflate stays in the tens of megabytes


def _capped(decompressor, body: bytes, limit: int, codec: str) -> bytes:
    try:
        for start in range(0, len(body), CHUNK):
            decompressor.decompress(body[start : start + CHUNK])
            if decompressor.len() > limit:
                raise TooLarge(f"{codec} inflates beyond {limit} bytes")
        out = bytes(decompressor.flush())
    except TooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - cramjam raises its own DecompressionError and ValueErrors
        raise ValueError(f"{codec}: {exc}") from None
    if len(out) > limit:
        raise TooLarge(f"{codec} inflates beyond {limit} bytes")
    return out
