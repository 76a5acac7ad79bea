"""SPDX license expressions, checked against the SPDX license list (`license-expression`).

A dataset's license is recorded at attest time and read back at BOM time; both go
through `normalize_license`, so a typo (`Totally-Made-Up`, `MIT AND`) is refused with
one line instead of landing in a signed attestation or an AI-BOM.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mlprov.errors import InputError

#: Custom licenses SPDX allows beside the list: `LicenseRef-x`, `DocumentRef-y:LicenseRef-x`.
_LICENSE_REF = re.compile(r"^(DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+\Z")
_SYMBOL = re.compile(r"^[A-Za-z0-9.\-+:]+\Z")
#: Far longer than any real expression; bounds the parser's work on hostile input.
MAX_EXPRESSION = 1000


@functools.cache
def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def normalize_license(text: str, *, what: str = "license") -> str:
    """`text` as a valid SPDX license expression in its canonical spelling (`mit` → `MIT`).

    Raises InputError naming the unknown identifier or the syntax error.
    """
    from license_expression import ExpressionError

    value = text.strip() if isinstance(text, str) else ""
    if not value:
        raise InputError(f"{what}: empty license expression")
    if len(value) > MAX_EXPRESSION:
        raise InputError(f"{what}: license expression longer than {MAX_EXPRESSION} characters")
    licensing = _licensing()
    try:
        parsed = licensing.parse(value, validate=False, strict=True)
    except (ExpressionError, TypeError, ValueError) as exc:
        raise InputError(f"{what}: {value!r} is not an SPDX license expression ({exc})") from None
    if parsed is None:
        raise InputError(f"{what}: empty license expression")
    unknown = set(licensing.unknown_license_keys(parsed))
    for symbol in licensing.license_symbols(parsed, decompose=True):
        key = str(symbol.key)
        if not _SYMBOL.match(key):
            raise InputError(f"{what}: {key!r} is not an SPDX license identifier")
        if key in unknown and not _LICENSE_REF.match(key):
            raise InputError(
                f"{what}: unknown SPDX license identifier {key!r} (see https://spdx.org/licenses/;"
                " a custom license is LicenseRef-<name>)"
            )
    rendered: str = parsed.render()
    return rendered
