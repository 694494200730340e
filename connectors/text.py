"""What the text connectors share: checking an encoding when a source is built."""

from __future__ import annotations

import codecs
from typing import Any

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
