"""A plugin's answer that is not success, as the control API carries it and the client reads it.

``handle`` returning a non-zero status (or ``pause``/``resume`` refusing) is an
:class:`~forgeoned.errors.ApplicationError`: the answer is 422 with the usual error shape plus
the plugin's ``status``, the ``export`` that answered and the ``output`` it wrote so far::

    {"error": {"code": "application_error", "message": "...", "export": "handle",
               "status": 3, "output": "bad input", "output_encoding": "utf-8"}}

``output`` is the text itself when the bytes are valid UTF-8 (``output_encoding`` "utf-8"),
else their standard base64 (``output_encoding`` "base64").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

from forgeoned.errors import ApplicationError, ForgeonedError

UTF8: Final = "utf-8"
BASE64: Final = "base64"


def encode_output(data: bytes) -> tuple[str, str]:
    """``(text, encoding)``: the text itself if ``data`` is UTF-8, else base64."""
    try:
        return data.decode(UTF8), UTF8
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), BASE64


def decode_output(text: str, encoding: str) -> bytes:
    """The bytes :func:`encode_output` encoded (anything unreadable gives ``b""``)."""
    if encoding == BASE64:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return b""
    return text.encode(UTF8)


def error_fields(exc: ForgeonedError) -> dict[str, Any]:
    """What an error answer carries besides ``code`` and ``message`` (nothing for most)."""
    if not isinstance(exc, ApplicationError):
        return {}
    text, encoding = encode_output(exc.output)
    return {"export": exc.export, "status": exc.status, "output": text, "output_encoding": encoding}


def application_error(error: Mapping[str, Any], message: str) -> ApplicationError:
    """The client side: the :class:`ApplicationError` an answer's ``error`` object stands for."""
    status = error.get("status")
    output = error.get("output")
    return ApplicationError(
        message,
        export=str(error.get("export", "handle")),
        status=status if isinstance(status, int) and not isinstance(status, bool) else 0,
        output=decode_output(output, str(error.get("output_encoding", UTF8)))
        if isinstance(output, str)
        else b"",
    )
