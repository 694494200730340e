"""moto's Kinesis server, made to behave as Kinesis does after a reshard, for tests.

``python -m streamio.connectors.kinesis.testing -H 127.0.0.1 -p PORT`` runs moto's
standalone server (``moto[server]``, a real HTTP endpoint speaking the Kinesis API;
:func:`streamio.connectors.testing.moto_server` starts it on a free loopback port).
Clients talk to it over HTTP like to Kinesis: nothing on the client side is mocked.

moto 5 differs from Kinesis in three ways that a source handling resharding must
not be tested against, so this launcher corrects them in the server before it
starts it, and changes nothing else:

1. after ``SplitShard`` or ``MergeShards``, moto keeps writing new records to the
   closed parent (its hash-key lookup does not skip closed shards); Kinesis writes
   them to the open children. Here the lookup takes open shards only.
2. moto moves a parent's records into its children when it splits or merges it,
   under new sequence numbers; Kinesis leaves them in the parent, readable until
   they expire. Here they stay in the parent.
3. moto's ``GetRecords`` always returns a ``NextShardIterator``; Kinesis returns
   none once a closed shard has been read to its end, which is how a reader knows
   to go on with the children. Here it returns none then too.

``--shard-write-limit N/SECONDS`` adds Kinesis's per-shard write throughput limit
(1,000 records/s per shard on Kinesis; here N records per SECONDS, in a sliding
window): ``PutRecords`` then accepts what fits and fails each other record with
``ProvisionedThroughputExceededException``, as Kinesis does — the partial failure a
sink has to retry.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]


class _ShardWriteLimit:
    """At most ``records`` accepted per shard in any ``seconds`` (a sliding window)."""

    def __init__(self, records: int, seconds: float) -> None:
        self.records = records
        self.seconds = seconds
        self._accepted: dict[str, deque[float]] = {}

    def admit(self, shard: str) -> bool:
        """Whether ``shard`` (stream and shard id) accepts one more record now."""
        now = time.monotonic()
        accepted = self._accepted.setdefault(shard, deque())
        while accepted and accepted[0] <= now - self.seconds:
            accepted.popleft()
        if len(accepted) >= self.records:
            return False
        accepted.append(now)
        return True


def _parse_limit(text: str) -> _ShardWriteLimit:
    records, _, seconds = text.partition("/")
    try:
        return _ShardWriteLimit(int(records), float(seconds or 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RECORDS/SECONDS, not {text!r}") from None


def _correct_moto(limit: _ShardWriteLimit | None) -> None:
    """Apply the corrections the module docstring lists to moto's Kinesis model."""
    from moto.kinesis import models

    stream_class: Any = models.Stream
    backend_class: Any = models.KinesisBackend
    needed = [(stream_class, name) for name in ("split_shard", "merge_shards", "get_shard_for_key")]
    needed += [(backend_class, name) for name in ("get_records", "put_records")]
    for owner, name in needed:
        if not callable(getattr(owner, name, None)):
            raise RuntimeError(f"this moto has no {owner.__name__}.{name}: update the launcher")
    stream_class.get_shard_for_key = _open_shard_for_key
    stream_class.split_shard = _keeping_records(stream_class.split_shard, parents=1)
    stream_class.merge_shards = _keeping_records(stream_class.merge_shards, parents=2)
    backend_class.get_records = _ending_closed_shards(backend_class.get_records)
    if limit is not None:
        backend_class.put_records = _limiting_writes(backend_class.put_records, limit)


def _open_shard_for_key(self: Any, partition_key: Any, explicit_hash_key: Any) -> Any:
    """The open shard whose hash-key range holds the record's key (1.)."""
    from moto.kinesis.exceptions import InvalidArgumentError
    from moto.utilities.utils import md5_hash

    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise InvalidArgumentError("partition_key")
    if explicit_hash_key:
        key = int(explicit_hash_key)
        if key >= 2**128:
            raise InvalidArgumentError("explicit_hash_key")
    else:
        key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    raise InvalidArgumentError("no open shard holds this hash key")


def _keeping_records(original: Callable[..., Any], parents: int) -> Callable[..., Any]:
    """``original`` (split or merge) with the parents' records left in them (2.)."""

    def reshard(self: Any, *args: Any) -> Any:
        shards = [self.shards[shard_id] for shard_id in args[:parents]]
        kept = [shard.records for shard in shards]
        for shard in shards:
            shard.records = OrderedDict()  # nothing for moto to move
        try:
            return original(self, *args)
        finally:
            for shard, records in zip(shards, kept, strict=True):
                shard.records = records

    return reshard


def _ending_closed_shards(original: Callable[..., Any]) -> Callable[..., Any]:
    """``GetRecords`` without a next iterator once a closed shard is read (3.)."""
    from moto.kinesis.utils import decompose_shard_iterator

    def get_records(self: Any, stream_arn: Any, shard_iterator: str, limit: Any) -> Any:
        next_iterator, records, behind = original(self, stream_arn, shard_iterator, limit)
        stream_name, shard_id, last = decompose_shard_iterator(next_iterator)
        stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        shard = stream.get_shard(shard_id)
        if not shard.is_open and int(last) >= shard.get_max_sequence_number():
            next_iterator = None  # read to its end: go on with the children
        return next_iterator, records, behind

    return get_records


def _limiting_writes(original: Callable[..., Any], limit: _ShardWriteLimit) -> Callable[..., Any]:
    """``PutRecords`` failing, record by record, what goes over ``limit``."""

    def put_records(self: Any, stream_arn: Any, stream_name: Any, records: Sequence[Any]) -> Any:
        stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
        admitted: list[Any] = []
        verdicts: list[Any] = []  # None: admitted, else the failure of that record
        for record in records:
            shard = stream.get_shard_for_key(
                record.get("PartitionKey"), record.get("ExplicitHashKey")
            )
            if limit.admit(f"{stream.stream_name}/{shard.shard_id}"):
                admitted.append(record)
                verdicts.append(None)
            else:
                verdicts.append({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": f"Rate exceeded for shard {shard.shard_id} in stream "
                    f"{stream.stream_name} under account {self.account_id}.",
                })  # fmt: skip
        written = iter(original(self, stream_arn, stream_name, admitted)["Records"])
        results = [next(written) if verdict is None else verdict for verdict in verdicts]
        failed = sum(verdict is not None for verdict in verdicts)
        return {"FailedRecordCount": failed, "Records": results}

    return put_records


def main(argv: Sequence[str] | None = None) -> None:
    """Correct moto's Kinesis (see the module docstring), then run moto's server with
    the other arguments (``-H 127.0.0.1 -p PORT``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--shard-write-limit", type=_parse_limit, default=None)
    ours, theirs = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    _correct_moto(ours.shard_write_limit)
    from moto.server import main as moto_main

    moto_main(theirs)


if __name__ == "__main__":
    main()
