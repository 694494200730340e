"""How aiokafka's errors become streamio's :class:`~streamio.ConnectorError`.

``retriable`` says whether trying again later may help: a broker that went away or
timed out (the runtime restarts the receiver with backoff), against a refused
option, a failed authentication or an unauthorised topic (a restart would fail
the same way, so the source stops at once).
"""

from __future__ import annotations

import asyncio

from aiokafka import errors as kafka_errors

from streamio.errors import ConnectorError

__all__ = ["is_retriable", "to_connector_error"]

# Errors aiokafka does not flag as retriable although a broker coming back fixes them.
_TRANSIENT: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.RequestTimedOutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.GroupCoordinatorNotAvailableError,
    kafka_errors.NotCoordinatorForGroupError,
    kafka_errors.RebalanceInProgressError,
    asyncio.TimeoutError,
    TimeoutError,
    ConnectionError,
)

# Never worth a retry, whatever the class says.
_PERMANENT: tuple[type[BaseException], ...] = (
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.KafkaConfigurationError,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.IncompatibleBrokerVersion,
    kafka_errors.UnsupportedCodecError,
    kafka_errors.IllegalArgumentError,
)


def is_retriable(error: BaseException) -> bool:
    """Whether trying the same operation again later may succeed."""
    if isinstance(error, _PERMANENT):
        return False
    if isinstance(error, _TRANSIENT):
        return True
    return bool(getattr(error, "retriable", False))


def to_connector_error(error: BaseException, action: str) -> ConnectorError:
    """A ConnectorError for ``error``, met while doing ``action`` ("fetching", ...).

    Chain the original with ``raise to_connector_error(exc, ...) from exc``. The
    message holds the error's own text only: never the client configuration,
    which may carry passwords.
    """
    text = str(error) or type(error).__name__
    if not text.startswith(type(error).__name__):
        text = f"{type(error).__name__}: {text}"
    retriable = is_retriable(error)
    hint = "" if retriable else " (not retriable)"
    return ConnectorError(f"Kafka {action} failed{hint}: {text}", retriable=retriable)
