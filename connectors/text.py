"""What the text connectors share: checking an encoding when a source is built, and
cutting UTF-8 bytes into an Arrow array of lines for ``columnar=True``."""

from __future__ import annotations

import codecs
from typing import Any

from streamio.checks import check_installed
from streamio.errors import ConfigurationError


def check_encoding(encoding: Any, errors: Any) -> None:
    """Fail at build time on an unknown encoding or codec error handler."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ConfigurationError(f"unknown encoding {encoding!r}") from None
    try:
        codecs.lookup_error(errors)
    except (LookupError, TypeError):
        msg = f"unknown codec error handler {errors!r} (use 'strict', 'replace', ...)"
        raise ConfigurationError(msg) from None


def check_columnar_encoding(encoding: str, what: str) -> Any:
    """For ``columnar=True``: the text must be UTF-8 (Arrow's strings are), and
    pyarrow installed; returns the pyarrow module."""
    if codecs.lookup(encoding).name != "utf-8":
        msg = (
            f"{what}: columnar=True reads UTF-8 text (Arrow strings are UTF-8), not "
            f"{encoding!r}; use columnar=False to decode {encoding!r} row by row"
        )
        raise ConfigurationError(msg)
    return check_installed("pyarrow", f"{what} with columnar=True", "arrow")


def arrow_lines(data: bytes, separator: bytes, errors: str, strip_cr: bool) -> Any:
    """The lines of ``data`` (UTF-8 text, cut at each ``separator``) as an Arrow
    string array, cut in Arrow: no Python object per line.

    Every piece between separators is a line, the last one included (pass the
    text without its final separator). With ``strip_cr`` a ``"\\r"`` ending a
    line is removed. Bytes that are not UTF-8 are handled by the codec error
    handler ``errors``, as Python's decoding would (strict: UnicodeDecodeError).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    lines = pc.split_pattern(pa.array([data], pa.binary()), separator).flatten()
    try:
        text = lines.cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8: decode with the error handler, then again
        # (Arrow strings hold no lone surrogates: an error handler's become "?")
        fixed = data.decode("utf-8", errors).encode("utf-8", "replace")
        lines = pc.split_pattern(pa.array([fixed], pa.binary()), separator).flatten()
        text = lines.cast(pa.string())
    if strip_cr and b"\r" in data:
        text = pc.replace_substring_regex(text, pattern="\r$", replacement="")
    return text
