"""The configuration checks the runtime and the connectors share."""

from __future__ import annotations

import math

import pytest

from streamio import ConfigurationError
from streamio.checks import check_number, check_whole_number


@pytest.mark.parametrize("value", [2, 0.5])
def test_a_positive_finite_number_is_returned_as_a_float(value):
    assert check_number(value, "interval") == float(value)
    assert isinstance(check_number(value, "interval"), float)


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, True, "1", None])
def test_anything_else_names_the_setting_its_unit_and_the_value(value):
    with pytest.raises(ConfigurationError) as raised:
        check_number(value, "max_rate", unit="records per second")
    assert str(raised.value) == (
        f"max_rate must be a finite number of records per second > 0, not {value!r}"
    )


def test_zero_is_accepted_only_when_allowed():
    assert check_number(0, "backoff", allow_zero=True) == 0.0
    with pytest.raises(ConfigurationError, match="backoff must be a finite number of seconds >= 0"):
        check_number(-0.1, "backoff", allow_zero=True)


def test_whole_numbers_have_a_minimum_and_exclude_bools_and_floats():
    assert check_whole_number(3, "partition_size") == 3
    assert check_whole_number(0, "restarts", minimum=0) == 0
    for value in (0, 1.0, True, "2"):
        with pytest.raises(ConfigurationError, match="partition_size must be a whole number >= 1"):
            check_whole_number(value, "partition_size")
    with pytest.raises(ConfigurationError, match=r"restarts must be a whole number >= 0, not -1"):
        check_whole_number(-1, "restarts", minimum=0)
