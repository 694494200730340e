"""Shared fixtures: every async test runs on asyncio's default loop and on uvloop."""

from __future__ import annotations

import asyncio

import pytest
import uvloop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item):
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
