"""Reading text files strictly, and the text clean-up applied by every benchmark loader.

:func:`read_text` decodes a whole file as UTF-8 and turns a bad byte into a :class:`DataError`
naming the file, line and byte offset: Python's own ``UnicodeDecodeError`` names neither file nor
line, and its offset is relative to an internal read buffer.

Older copies of MELD (before declare-lab/MELD PR #28) store cp1252 punctuation as C1 control
characters (U+0092 for an apostrophe...), and some derived copies (CoMPM's) carry the UTF-8-read-
as-cp1252 mojibake ``â€™``. Current files mix straight and curly apostrophes, sometimes within
one line. We repair both kinds of mojibake and then write every apostrophe and quote one way
(straight ASCII), so that tokenisation does not depend on which copy a user has.
"""

from __future__ import annotations

import re
from pathlib import Path

from erc.errors import DataError


def read_text(path: Path | str, encoding: str = "utf-8") -> str:
    """The contents of ``path`` decoded strictly (``utf-8`` or ``utf-8-sig``); a byte that is not valid
    UTF-8 is a DataError saying where it is and how to get a clean copy."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        offset = err.start  # absolute: the whole file was decoded at once
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        raise DataError(
            f"{path}: line {line}, column {column} (byte offset {offset}): byte 0x{raw[offset]:02x} is not valid "
            f"UTF-8 ({err.reason}); the file is damaged or in another encoding. Replace it with a fresh copy "
            f"(`make data` downloads MELD and EmoryNLP again) or convert it: "
            f"iconv -f <its encoding> -t UTF-8 {path} > fixed && mv fixed {path}") from None


# UTF-8 punctuation bytes decoded as cp1252: the sequence -> the intended character.
_MOJIBAKE: dict[str, str] = {
    "â€™": "’", "â€˜": "‘", "â€œ": "“", "â€\x9d": "”", "â€¦": "…",
    "â€”": "—", "â€“": "–", "Â ": " ", "Â\xa0": " ",
}
# A bare "â€" left when the third byte (0x9D, undefined in cp1252) was dropped: a closing quote.
_BARE_MOJIBAKE = re.compile("â€(?![\x80-\xff™˜œ¦”“])")
# C1 control characters that are cp1252 punctuation stored as Latin-1 code points.
_C1: dict[str, str] = {
    "\x85": "…", "\x91": "‘", "\x92": "’", "\x93": "“", "\x94": "”",
    "\x96": "–", "\x97": "—", "\xa0": " ",
}
# One way for quotes: straight ASCII.
_QUOTES: dict[str, str] = {"’": "'", "‘": "'", "‛": "'", "`": "'", "“": '"', "”": '"', "„": '"'}
_C1_TABLE = str.maketrans(_C1)
_QUOTE_TABLE = str.maketrans(_QUOTES)


def normalise_text(text: str) -> str:
    """Repair cp1252 mojibake, make apostrophes/quotes straight, collapse odd spaces, strip."""
    if "â€" in text or "Â" in text:
        for bad, good in _MOJIBAKE.items():
            text = text.replace(bad, good)
        text = _BARE_MOJIBAKE.sub("”", text)
    text = text.translate(_C1_TABLE).translate(_QUOTE_TABLE)
    return text.strip()
