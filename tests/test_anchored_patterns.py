"""Every anchored regular expression in mlprov ends with `\\Z`, not `$`.

Python's `$` also matches before a final newline, so `^[0-9a-f]{64}$` accepts a digest
with a newline after it: a second spelling of one value, and a way to carry a line break
into YAML, rules or output that a check was meant to keep out.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "mlprov"
_PATTERN = re.compile(r"""re\.(?:match|search|compile|fullmatch)\(\s*r?(["'])(.*?)\1""")


def test_no_pattern_ends_with_a_dollar() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {match.group(2)}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for match in _PATTERN.finditer(line)
        if re.search(r"(?<!\\)\$$", match.group(2))
    ]
    assert not offenders, "use \\Z (or fullmatch):\n" + "\n".join(offenders)


def test_a_trailing_newline_is_not_a_second_spelling_of_a_digest() -> None:
    from mlprov.predicates.oms import _HEX
    from mlprov.store.record import _HEX as STORE_HEX

    digest = "ab" * 32
    for pattern in (_HEX, STORE_HEX):
        assert pattern.match(digest)
        assert not pattern.match(digest + "\n")
