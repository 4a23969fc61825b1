"""The one JSON reader for everything that arrives from outside (HTTP bodies, Pub/Sub data).

The standard library's ``json.loads`` accepts inputs that later blow up far from the
parser: integers longer than Python's 4,300-digit conversion limit raise ``ValueError``,
deep nesting raises ``RecursionError``, ``NaN``/``Infinity`` (and ``1e400``, which becomes
infinity) are not JSON at all, and a duplicated key silently keeps the last value (so two
readers of the same body can disagree). ``loads`` refuses all of these with ``InvalidInput``
(a 400 over HTTP, a logged-and-acknowledged message on Pub/Sub):

- a byte-order mark, invalid UTF-8, or text that is not one JSON value;
- a number literal longer than ``MAX_NUMBER_CHARS`` characters, a non-finite number, or a
  decimal whose exponent is beyond ``MAX_DECIMAL_EXPONENT``;
- ``NaN``, ``Infinity``, ``-Infinity``;
- a key that appears twice in one object;
- nesting deeper than ``max_depth`` (default ``MAX_DEPTH``);
- a string (key or value) longer than ``max_string`` characters (default
  ``MAX_STRING_CHARS``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from shared.errors import InvalidInput

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100
MAX_DECIMAL_EXPONENT = 100
MAX_STRING_CHARS = 1024 * 1024


class _Refused(ValueError):
    """Raised inside the parser's hooks; becomes InvalidInput."""


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number has more than {MAX_NUMBER_CHARS} digits")
    return int(text)


def _float_parser(parse_float: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise _Refused(f"a number has more than {MAX_NUMBER_CHARS} characters")
        value = parse_float(text)
        if isinstance(value, Decimal):
            if not value.is_finite() or abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
                raise _Refused("a number is out of range")
        elif isinstance(value, float) and not math.isfinite(value):
            raise _Refused("a number is out of range")
        return value

    return parse


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"the key {key[:40]!r} appears twice in one object")
        result[key] = value
    return result


def _check_shape(value: Any, max_depth: int, max_string: int) -> None:
    """Depth and string lengths, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if len(item) > max_string:
                raise InvalidInput(f"a string is longer than {max_string} characters")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidInput(f"the JSON is nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if len(key) > max_string:
                        raise InvalidInput(f"a key is longer than {max_string} characters")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def loads(
    data: bytes | str,
    *,
    what: str = "the body",
    parse_float: Callable[[str], Any] = float,
    max_depth: int = MAX_DEPTH,
    max_string: int = MAX_STRING_CHARS,
) -> Any:
    """``data`` as one strict JSON value, or InvalidInput naming ``what`` was wrong."""
    if isinstance(data, bytes | bytearray):
        if data.startswith(b"\xef\xbb\xbf"):
            raise InvalidInput(f"{what} starts with a byte-order mark")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{what} is not UTF-8") from None
    else:
        text = data
    if text.startswith("\ufeff"):
        raise InvalidInput(f"{what} starts with a byte-order mark")
    try:
        value = json.loads(
            text,
            parse_int=_int,
            parse_float=_float_parser(parse_float),
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except _Refused as exc:
        raise InvalidInput(f"{what} is not acceptable JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply") from None
    except ValueError:  # JSONDecodeError and number conversions
        raise InvalidInput(f"{what} is not valid JSON") from None
    _check_shape(value, max_depth, max_string)
    return value
