import operator

from streamio import ManualClock, StreamingContext


async def test_issue_example_word_count():
    clock = ManualClock()
    async with StreamingContext(batch_interval=1.0, clock=clock) as ssc:
        lines = ssc.queue_stream([["a b", "b c"], ["c c"]])
        counts = lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add)
        seen = []
        counts.foreach_batch(lambda t, records: seen.append((t, sorted(records))))
        ssc.start()
        await clock.advance(2.0)
    assert seen[:2] == [(1.0, [("a", 1), ("b", 2), ("c", 1)]), (2.0, [("c", 2)])]
