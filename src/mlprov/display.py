"""Names from outside shown safely on a terminal: quoted as git and ls quote them.

A file or artifact name can hold a newline (forging another output line, such as a
digest line), an ANSI escape sequence, a bidi override or bytes that are not UTF-8.
Human output passes every such name through `display_name`; messages that embed
names pass through `one_line`. JSON output needs neither: it escapes by itself.
"""

from __future__ import annotations

import os
import unicodedata

#: Unicode categories a terminal must not receive raw: controls (newline, ESC), format
#: characters (bidi overrides, zero-width), line/paragraph separators, lone surrogates.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}
_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def display_name(name: str | os.PathLike[str]) -> str:
    """A file or artifact name for human output: as is when harmless, else C-quoted.

    As `git` and `ls` do, a name holding a control character (a newline that would
    forge another output line, an ANSI escape), a bidi or zero-width character, an
    undecodable byte, a double quote or a backslash is printed in double quotes with
    those characters escaped (`"evil\\nsha256:..."`), so a name is always one token.
    JSON output is unchanged: it escapes by itself.
    """
    text = os.fspath(name)
    if not any(_unsafe(c) or c in '"\\' for c in text):
        return text
    return '"' + "".join(_escape(c) if _unsafe(c) or c in '"\\' else c for c in text) + '"'


def one_line(text: str) -> str:
    """A message embedding names from outside, its control characters escaped: one line."""
    if not any(_unsafe(c) for c in text):
        return text
    return "".join(_escape(c) if _unsafe(c) else c for c in text)
