"""How the Kinesis source and sink reach Kinesis: the client, its credentials, and
what its errors mean.

Credentials come from the arguments, else from botocore's usual chain (the
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``
environment variables, the shared credentials file, an instance role). They are
handed to botocore and kept nowhere else: no ``repr``, log line or error message
of the connector shows them. The region must be known when the source or sink is
made (``region_name=``, ``AWS_REGION``/``AWS_DEFAULT_REGION`` or the config file),
so that a missing one fails then, not at the first call.

botocore's own retries are off: the connector retries itself, so that a lost
endpoint is reported to the listeners and retried with its backoff.
"""

from __future__ import annotations

import contextlib
from typing import Any

try:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import AioSession, get_session
    from botocore import exceptions as botocore_errors
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    msg = "the Kinesis connector needs aiobotocore: pip install 'streamio[kinesis]'"
    raise ImportError(msg) from exc

from streamio.checks import check_number
from streamio.errors import ConfigurationError, ConnectorError

__all__ = ["ClientError", "KinesisClient", "error_code", "is_lost", "is_throttled"]

ClientError = botocore_errors.ClientError

# Errors after which the same call may succeed later: the endpoint went away or is
# restarting (an HTTP-level failure, a 5xx answer), or the stream is being created.
_LOST_ERRORS = (
    botocore_errors.HTTPClientError,
    botocore_errors.ConnectionError,
    OSError,
    TimeoutError,
)
# Error codes of a refused call that no retry fixes.
_REFUSED = frozenset({
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "IncompleteSignature", "ExpiredTokenException", "ValidationException",
    "InvalidArgumentException",
})  # fmt: skip
_THROTTLED = frozenset({
    "ProvisionedThroughputExceededException", "LimitExceededException",
    "ThrottlingException", "KMSThrottlingException",
})  # fmt: skip


def error_code(exc: BaseException) -> str | None:
    """The Kinesis error code of a refused call (None for other errors)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or None
    return None


def is_throttled(exc: BaseException) -> bool:
    """A call refused for going over a throughput or API limit: wait and retry."""
    return error_code(exc) in _THROTTLED


def is_lost(exc: BaseException) -> bool:
    """The endpoint cannot be reached or failed (retry with backoff): HTTP and
    connection errors, 5xx answers, and a stream not found (being created)."""
    if isinstance(exc, _LOST_ERRORS):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return int(status) >= 500 or error_code(exc) == "ResourceNotFoundException"
    return False


def is_refused(exc: BaseException) -> bool:
    """A call refused in a way no retry fixes (credentials, permissions, arguments)."""
    return error_code(exc) in _REFUSED


class KinesisClient:
    """The options of an aiobotocore Kinesis client, checked when made; :meth:`connect`
    makes the client.

    Args:
        region_name: the AWS region; None: botocore's (``AWS_REGION``...).
        endpoint_url: another endpoint (a VPC endpoint, a local emulator); None:
            the region's.
        aws_access_key_id, aws_secret_access_key, aws_session_token: credentials;
            None: botocore's chain. Never logged nor shown.
        connect_timeout, read_timeout: seconds for one HTTP connection and answer.

    Raises:
        ConfigurationError: when no region is known, a key is given without its
            secret, or a timeout is not a positive number.
    """

    def __init__(
        self,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
    ) -> None:
        self._session: AioSession = get_session()
        region = region_name or self._session.get_config_variable("region")
        if not isinstance(region, str) or not region:
            msg = "no AWS region: pass region_name='...' or set AWS_REGION"
            raise ConfigurationError(msg)
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            msg = "give aws_access_key_id and aws_secret_access_key together (or neither)"
            raise ConfigurationError(msg)
        if endpoint_url is not None and (
            not isinstance(endpoint_url, str) or not endpoint_url.startswith(("http://", "https://"))
        ):
            msg = f"endpoint_url must be an http(s):// URL, not {endpoint_url!r}"
            raise ConfigurationError(msg)
        self.region_name = region
        self.endpoint_url = endpoint_url
        self._credentials = {
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
        }
        self._config = AioConfig(
            connect_timeout=check_number(connect_timeout, "connect_timeout"),
            read_timeout=check_number(read_timeout, "read_timeout"),
            retries={"total_max_attempts": 1},  # the connector retries, and reports
        )

    @property
    def where(self) -> str:
        """The endpoint (or region) for messages and listeners; never credentials."""
        return self.endpoint_url or f"kinesis in {self.region_name}"

    async def connect(self, stack: contextlib.AsyncExitStack) -> Any:
        """A client, closed when ``stack`` closes. Makes no call to Kinesis."""
        client = self._session.create_client(
            "kinesis",
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            config=self._config,
            **self._credentials,
        )
        return await stack.enter_async_context(client)

    def refused(self, exc: BaseException, action: str) -> ConnectorError:
        """The non-retriable error for a call that Kinesis refused."""
        return ConnectorError(
            f"Kinesis at {self.where} refused {action} (not retriable): {exc}", retriable=False
        )

    def lost(self, exc: BaseException, action: str) -> ConnectorError:
        """The retriable error for a call that failed on the way."""
        error = ConnectorError(f"{action} at {self.where} failed: {exc!r}", retriable=True)
        error.__cause__ = exc
        return error
