"""Message bodies and payloads for the pages: pretty JSON, text or hex. Hostile bytes by definition — these are data
for auto-escaping templates, never marked safe."""

import codecs
import json

SHOWN = 256 * 1024  # a 5 MB body is shown in part; the API has it whole
HEX_SHOWN = 16 * 1024


def views(head: bytes, size: int | None = None) -> dict:
    """`head`: the start of the bytes (up to SHOWN), `size`: the whole length when more exists than `head` holds.
    Returns {size, truncated, json, text, hex}; json and text are None where they do not apply."""
    size = len(head) if size is None else size
    head = head[:SHOWN]
    out = {"size": size, "truncated": size > len(head), "json": None, "text": None}
    try:
        # Not final when cut short: a character split by the cut is dropped, not taken for binary.
        out["text"] = codecs.getincrementaldecoder("utf-8")().decode(head, final=not out["truncated"])
    except UnicodeDecodeError:
        pass
    if out["text"] is not None and not out["truncated"]:
        try:
            pretty = json.dumps(json.loads(out["text"]), indent=2, ensure_ascii=False)
            # A `\ud800` escape decodes to a lone surrogate, which no UTF-8 page can carry: such JSON is shown as its
            # text (where the escape stays six plain characters) instead of failing the page.
            pretty.encode("utf-8")
            out["json"] = pretty
        except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError too
            pass  # not JSON, or nested deeper than Python's parser goes: shown as text
    chunk = head[:HEX_SHOWN]
    out["hex"] = "\n".join(_hex_line(i, chunk[i : i + 16]) for i in range(0, len(chunk), 16))
    return out


def _hex_line(offset: int, row: bytes) -> str:
    printable = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
    return f"{offset:08x}  {row.hex(' '):<47}  {printable}"
