"""Pure-Python clients: kafka-python and aiokafka produce/consume round trips (no consumer groups)."""
from __future__ import annotations

import asyncio
import time

from silt_helpers import create_topic

COUNT = 300
PARTITIONS = 2


def expected_messages(tag: str):
    return [(f"{tag}-k{i}".encode(), f"{tag}-value-{i}-".encode() + bytes(range(i % 256))) for i in range(COUNT)]


def check(acked, consumed, msgs):
    """acked: list of (partition, offset) per message; consumed: list of (partition, offset, key, value)."""
    assert len(consumed) == len(msgs), f"consumed {len(consumed)} of {len(msgs)}"
    at = {(p, o): (k, v) for p, o, k, v in consumed}
    assert len(at) == len(consumed), "duplicate offsets consumed"
    for i, (p, o) in enumerate(acked):
        assert at.get((p, o)) == msgs[i], f"message {i} acknowledged at {p}/{o} but consumed {at.get((p, o))!r}"
    for p in range(PARTITIONS):
        offs = [o for pp, o, _, _ in consumed if pp == p]
        assert offs == list(range(len(offs))), f"partition {p}: offsets {offs[:10]}... not 0..n-1 in order"


def test_kafka_python_roundtrip(node):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = "kp-roundtrip"
    create_topic(node, topic, partitions=PARTITIONS)
    msgs = expected_messages("kp")
    # kafka-python 3 defaults to an idempotent producer (InitProducerId, sequence numbers).
    prod = KafkaProducer(bootstrap_servers=node.bootstrap, acks="all", linger_ms=5,
                         request_timeout_ms=30000, max_block_ms=30000)
    try:
        futures = [prod.send(topic, key=k, value=v, partition=i % PARTITIONS) for i, (k, v) in enumerate(msgs)]
        prod.flush(timeout=60)
        acked = []
        for f in futures:
            md = f.get(timeout=30)
            acked.append((md.partition, md.offset))
    finally:
        prod.close(timeout=10)

    cons = KafkaConsumer(bootstrap_servers=node.bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", request_timeout_ms=30000)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        cons.assign(tps)
        cons.seek_to_beginning(*tps)
        consumed = []
        deadline = time.monotonic() + 60
        while len(consumed) < COUNT and time.monotonic() < deadline:
            for tp, records in cons.poll(timeout_ms=500).items():
                consumed += [(tp.partition, r.offset, r.key, r.value) for r in records]
    finally:
        cons.close()
    check(acked, consumed, msgs)


def test_aiokafka_roundtrip(node):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    topic = "aio-roundtrip"
    create_topic(node, topic, partitions=PARTITIONS)
    msgs = expected_messages("aio")

    async def run():
        # aiokafka's default is not idempotent; ask for it, so that its InitProducerId and sequences are exercised.
        prod = AIOKafkaProducer(bootstrap_servers=node.bootstrap, acks="all", request_timeout_ms=30000,
                                enable_idempotence=True)
        await asyncio.wait_for(prod.start(), 30)
        try:
            acked = []
            for i, (k, v) in enumerate(msgs):
                if i % 2 == 0:
                    md = await asyncio.wait_for(prod.send_and_wait(topic, key=k, value=v, partition=i % PARTITIONS), 30)
                    acked.append((md.partition, md.offset))
                else:  # batched path: send and await the future later
                    fut = await prod.send(topic, key=k, value=v, partition=i % PARTITIONS)
                    md = await asyncio.wait_for(fut, 30)
                    acked.append((md.partition, md.offset))
        finally:
            await asyncio.wait_for(prod.stop(), 30)

        cons = AIOKafkaConsumer(bootstrap_servers=node.bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=30000)
        await asyncio.wait_for(cons.start(), 30)
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            cons.assign(tps)
            await asyncio.wait_for(cons.seek_to_beginning(*tps), 30)
            consumed = []
            deadline = time.monotonic() + 60
            while len(consumed) < COUNT and time.monotonic() < deadline:
                batch = await cons.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    consumed += [(tp.partition, r.offset, r.key, r.value) for r in records]
        finally:
            await asyncio.wait_for(cons.stop(), 30)
        return acked, consumed

    acked, consumed = asyncio.run(run())
    check(acked, consumed, msgs)
