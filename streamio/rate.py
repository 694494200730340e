"""Backpressure: a PID controller that sets each receiver's rate from its batches.

``StreamingContext(backpressure=True)`` turns it on, as
``spark.streaming.backpressure.enabled`` does in Spark. After every completed
batch, each receiver stream's estimator compares the rate the pipeline
processed that stream's records at with the rate it had allowed, and sets the
cap for the next batches; the cap goes through the path of ``max_rate`` (a
batch takes at most ``rate * batch_interval`` records, the rest waits in the
buffer, and once the buffer is full the receiver waits: the Kafka source pauses
its partitions). ``max_rate``, when set, still bounds it.

The estimator is Spark's ``PIDRateEstimator``. With ``r`` the last rate set,
``p = records / processing_time`` the rate the batch was processed at,
``d`` its scheduling delay and ``T`` the batch interval::

    error      = r - p
    historical = d * p / T        # the records the delay stands for, as a rate
    d_error    = (error - previous_error) / (seconds since the last estimate)
    new rate   = max(min_rate, r - kp * error - ki * historical - kd * d_error)

with ``kp = 1.0``, ``ki = 0.2``, ``kd = 0.0``. The first batch that has records
and a processing time only records ``p`` as the rate (no cap is set from it);
batches without records or without processing time are skipped. Until the
first estimate, ``initial_rate`` (when given) caps the stream, so that the first
batch does not pull the whole backlog; the rate never goes below ``min_rate``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .checks import check_number
from .errors import ConfigurationError
from .inputs import ReceiverInputNode
from .listener import BatchInfo

__all__ = ["PIDRateEstimator", "RateController", "check_backpressure"]

PROPORTIONAL = 1.0
INTEGRAL = 0.2
DERIVATIVE = 0.0


def check_backpressure(
    backpressure: object, initial_rate: object, min_rate: object
) -> tuple[bool, float | None, float]:
    """The context's backpressure settings, checked: ``(on, initial_rate, min_rate)``."""
    if not isinstance(backpressure, bool):
        msg = f"backpressure must be True or False, not {backpressure!r}"
        raise ConfigurationError(msg)
    floor = check_number(min_rate, "min_rate", unit="records per second")
    if initial_rate is None:
        return backpressure, None, floor
    if not backpressure:
        msg = (
            "initial_rate caps the first batches of the backpressure controller: "
            "give backpressure=True too, or max_rate= to the stream for a fixed cap"
        )
        raise ConfigurationError(msg)
    initial = check_number(initial_rate, "initial_rate", unit="records per second")
    if initial < floor:
        msg = f"initial_rate ({initial}) must not be less than min_rate ({floor})"
        raise ConfigurationError(msg)
    return backpressure, initial, floor


class PIDRateEstimator:
    """Spark's PID rate estimator for one stream (see the module's docstring).

    Args:
        batch_interval: seconds between batches (> 0).
        min_rate: the lowest rate it estimates, records per second (> 0).
        proportional, integral, derivative: the gains (>= 0).
    """

    def __init__(
        self,
        batch_interval: float,
        min_rate: float,
        proportional: float = PROPORTIONAL,
        integral: float = INTEGRAL,
        derivative: float = DERIVATIVE,
    ) -> None:
        self.batch_interval = check_number(batch_interval, "batch_interval")
        self.min_rate = check_number(min_rate, "min_rate", unit="records per second")
        self.proportional = check_number(proportional, "proportional gain", allow_zero=True)
        self.integral = check_number(integral, "integral gain", allow_zero=True)
        self.derivative = check_number(derivative, "derivative gain", allow_zero=True)
        self._latest_time: float | None = None
        self._latest_rate: float | None = None
        self._latest_error = 0.0

    def compute(
        self, time: float, records: int, processing_time: float, scheduling_delay: float
    ) -> float | None:
        """The new rate after a batch that ended at ``time`` (clock seconds) and
        processed ``records`` in ``processing_time`` seconds after waiting
        ``scheduling_delay`` seconds; None when it sets none (the first such
        batch, or one without records or processing time, or out of order)."""
        if records <= 0 or processing_time <= 0:
            return None
        if self._latest_time is not None and time <= self._latest_time:
            return None
        processing_rate = records / processing_time
        if self._latest_rate is None:  # the first measure: nothing to correct yet
            self._latest_time, self._latest_rate = time, processing_rate
            return None
        assert self._latest_time is not None
        error = self._latest_rate - processing_rate
        historical_error = scheduling_delay * processing_rate / self.batch_interval
        d_error = (error - self._latest_error) / (time - self._latest_time)
        rate = max(
            self.min_rate,
            self._latest_rate
            - self.proportional * error
            - self.integral * historical_error
            - self.derivative * d_error,
        )
        self._latest_time, self._latest_rate, self._latest_error = time, rate, error
        return rate


class RateController:
    """Sets the ``controlled_rate`` of each receiver stream after every completed
    batch; an inline listener of the context's bus, so the next batch's cap is
    set before it is cut.

    Args:
        nodes: the receiver streams.
        batch_interval: seconds between batches.
        initial_rate: the cap until a stream's first estimate (None: none).
        min_rate: the lowest cap.
    """

    def __init__(
        self,
        nodes: Iterable[ReceiverInputNode],
        batch_interval: float,
        initial_rate: float | None,
        min_rate: float,
    ) -> None:
        self._estimators = {node: PIDRateEstimator(batch_interval, min_rate) for node in nodes}
        for node in self._estimators:
            node.controlled_rate = initial_rate

    def on_batch_completed(self, info: BatchInfo) -> None:
        end, processing = info.processing_end_time, info.processing_time
        delay = info.scheduling_delay
        if end is None or processing is None or delay is None:
            return
        for node, estimator in self._estimators.items():
            records = info.records_per_input.get(node.name, 0)
            rate = estimator.compute(end, records, processing, delay)
            if rate is not None:
                node.controlled_rate = rate
