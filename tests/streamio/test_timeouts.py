"""Sleeps and timeouts follow the context's clock: under a manual clock they end
only when the test advances time past them."""

from __future__ import annotations

import anyio

from streamio import ManualClock, SystemClock
from streamio.timeouts import move_on_after, sleep


async def test_sleep_ends_when_the_manual_clock_reaches_it() -> None:
    clock = ManualClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await sleep(clock, 2.0)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.lowlevel.checkpoint()  # the sleeper starts and falls asleep
        await clock.advance(1.5)
        assert woke == []
        await clock.advance(1.0)
    assert woke == [2.0]


async def test_move_on_after_expires_on_the_manual_clock() -> None:
    clock = ManualClock()
    never = anyio.Event()
    outcome: list[tuple[bool, float]] = []

    async def waiter() -> None:
        async with move_on_after(clock, 3.0) as scope:
            await never.wait()
        outcome.append((scope.cancelled_caught, clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.lowlevel.checkpoint()  # the waiter enters its block
        await clock.advance(2.5)
        assert outcome == []
        await clock.advance(1.0)
    assert outcome == [(True, 3.0)]


async def test_move_on_after_leaves_no_timer_behind_when_the_block_ends_first() -> None:
    clock = ManualClock()
    async with move_on_after(clock, 3.0) as scope:
        await anyio.lowlevel.checkpoint()
    assert not scope.cancelled_caught
    # No sleeper is left: advancing has nothing to wake and returns at once.
    await clock.advance(10.0)
    assert clock.now() == 10.0


async def test_system_clock_uses_anyio_deadlines() -> None:
    async with move_on_after(SystemClock(), 0.0) as scope:
        await anyio.sleep_forever()
    assert scope.cancelled_caught
