"""JSON read from files the library did not write itself, with bounds (docs/security.md).

``json.loads`` alone turns a hostile file into tracebacks: 200,000 nested brackets raise
RecursionError, a 400-digit number becomes an int whose use overflows (or a float ``inf``),
``NaN`` / ``Infinity`` are accepted, and a duplicated key silently keeps its last value.
:func:`loads` refuses each of these by name, through the caller's error class, before Python's
parser recurses. :func:`dumps` is the writing side: no JSON this library writes holds NaN or Infinity.

Private: config, feature-metadata, tokenizer and index readers call :func:`loads` (a whole file:
:func:`read`); the JSON Lines reader (``cmagrounding._io.jsonl_rows``) decodes each row with
:data:`ROWS`, the same hooks and limits.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

#: deepest nesting of arrays / objects accepted (configs use < 5 levels)
MAX_DEPTH = 64
#: most digits an integer literal may have, in every file this library reads (configs, metadata,
#: tokenizers, JSON Lines rows alike): int64 needs 19, and no count, id, frame number or time
#: needs more; a longer one overflows wherever it becomes a tensor or C integer. (JSON Lines rows
#: used to allow 40 for no stated reason; one limit now serves both readers.)
MAX_INT_DIGITS = 19

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting_depth(text: str) -> int:
    """Deepest ``[`` / ``{`` nesting in JSON ``text`` (brackets inside strings are not counted)."""
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif tok in "]}":
            depth -= 1
    return deepest


class Refused(ValueError):
    """Raised inside the decoder's hooks; ``kind`` ("duplicate", "number", "non-finite") lets each
    reader re-raise it as its own error class."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise Refused("number", f"an integer of {digits} digits (at most {MAX_INT_DIGITS} are accepted): "
                                f"{literal[:24]}{'...' if len(literal) > 24 else ''}")
    return int(literal)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise Refused("non-finite", f"a number too large for a float: {literal[:24]}{'...' if len(literal) > 24 else ''}")
    return value


def _constant(name: str) -> Any:
    raise Refused("non-finite", f"{name} (not valid JSON; non-finite numbers are refused)")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a key given twice is refused (json keeps the last one silently)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise Refused("duplicate", f"key {twice!r} is given twice in one object (which one is meant?)")
    return out


#: the decoders, built once (json.loads with hooks builds a new one per call): STRICT refuses
#: non-finite numbers too; ROWS leaves NaN / Infinity / float overflow to the JSON Lines callers,
#: which name the field that holds one (``pred start is nan``).
STRICT = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_int, parse_float=_float, parse_constant=_constant)
ROWS = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_int)


def loads(text: str | bytes, where: str, error: type[Exception], *, max_depth: int = MAX_DEPTH,
          surrogates: bool = False) -> Any:
    """Parse ``text`` strictly; anything refused raises ``error`` with a message starting ``where: ``.

    Refused: nesting deeper than ``max_depth``, integers over :data:`MAX_INT_DIGITS` digits,
    numbers that overflow a float, ``NaN`` / ``Infinity``, a key twice in one object, text that is
    not UTF-8 or holds a lone surrogate (unless ``surrogates``: a path from a non-UTF-8 file system
    is stored that way), and malformed JSON.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{where}: not UTF-8 text ({e})") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{where}: JSON nested {depth} levels deep (at most {max_depth} are accepted)")
    try:
        value = STRICT.decode(text)
    except Refused as e:
        raise error(f"{where}: refused: {e}") from None
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:  # a depth under max_depth never gets here; kept for a lowered recursion limit
        raise error(f"{where}: JSON nested too deeply") from None
    if not surrogates:
        _check_text(value, where, error)
    return value


def read(path: str | os.PathLike[str], error: type[Exception], what: str = "JSON file") -> Any:
    """:func:`loads` of the file ``path``; anything refused raises ``error`` as ``"<path>: not a
    readable <what>: <why>"``, a missing file as ``"<path>: <what> not found"``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as e:
        raise error(f"{path}: not a readable {what}: {e.strerror or e}") from None
    return loads(data, f"{path}: not a readable {what}", error)


def _check_text(value: Any, where: str, error: type[Exception]) -> None:
    """Refuse lone surrogates (``"\\ud800"``): no UTF-8 writer, tokenizer or terminal accepts them."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise error(f"{where}: a string holds a lone surrogate (not valid Unicode): {v[:40]!r}") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def dumps(value: Any, *, where: str = "the output", **kwargs: Any) -> str:
    """``json.dumps`` that refuses NaN and infinity (:class:`NonFiniteError` naming ``where`` and the value's key)."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError as e:
        from cmagrounding.errors import NonFiniteError

        raise NonFiniteError(f"{where}: refusing to write a non-finite number into JSON ({_nonfinite_key(value)})") from e


def _nonfinite_key(value: Any, path: str = "") -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path or 'value'} = {value}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        found = _nonfinite_key(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return ""
