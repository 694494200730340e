"""Counts the words of the text files that appear in a directory, in 1-second batches.

The twin of Spark's examples/src/main/python/streaming/hdfs_wordcount.py.

Usage: hdfs_wordcount <directory>

Run::

    python -m streamio example hdfs_wordcount incoming/

then move text files into ``incoming/``: each new file's words are counted in the
next batch. As in Spark, files already there are left alone and a file is read
once; write a file elsewhere (or under a name starting with ``.``) and rename it
in, so the job never sees it half written. Needs ``pip install 'streamio[files]'``.
"""

from __future__ import annotations

import operator

import streamio
from streamio import StreamingContext
from streamio.connectors.files import text_file_stream

from .running import example_parser, until_stopped


async def hdfs_wordcount(directory: str, batch_interval: float = 1.0) -> None:
    async with StreamingContext(batch_interval=batch_interval) as ssc:
        lines = text_file_stream(ssc, directory)
        counts = (
            lines.flat_map(lambda line: line.split(" "))
            .map(lambda word: (word, 1))
            .reduce_by_key(operator.add)
        )
        counts.pprint()
        await ssc.start()
        await until_stopped(ssc)


def main(argv: list[str] | None = None) -> None:
    parser = example_parser(__name__, __doc__, batch_interval=1.0)
    parser.add_argument("directory")
    args = parser.parse_args(argv)
    streamio.run(hdfs_wordcount(args.directory, args.interval), use_uvloop=args.uvloop)


if __name__ == "__main__":
    main()
