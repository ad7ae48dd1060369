"""The event broker behind a small interface, and the consumer loop that drives a :class:`StreamProcessor`.

:class:`Broker` is what the loop needs: fetch a batch, acknowledge it, dead-letter an event with its reason,
publish. :class:`NatsBroker` implements it on NATS JetStream (a stream ``<name>`` with subjects
``<name>.events.*`` read by one durable pull consumer, and a dead-letter stream ``<name>_dlq`` on
``<name>.dead``). Acknowledgement comes after the batch's features are written, so a consumer killed mid-batch
leaves its batch unacknowledged and JetStream redelivers it; the processor's state makes that harmless.
The offline write of a batch may come several batches later (:meth:`StreamProcessor.flush`), and the batch's
acknowledgement with it.
A dead-lettered event carries ``Nats-Msg-Id`` = its stream sequence, so redelivery does not dead-letter it
twice (JetStream's duplicate window).

The durable consumer is created, or its ``ack_wait`` brought to the configured one, by the first fetch, never
by a broker that only publishes: a publisher with the default ``ack_wait`` would otherwise fix the consumer's
redelivery delay at 30 s whatever the consumer is configured with.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from creditops.config import StreamingConfig
from creditops.streaming.consumer import BatchOutcome, StreamProcessor

_DEFAULTS = StreamingConfig()  # consume's defaults are the configuration's (one place for each value)


class Message(Protocol):
    """A fetched event: its bytes and a way to acknowledge it."""

    data: bytes


class Broker(Protocol):
    """What the consumer loop needs from a broker."""

    async def fetch(self, max_events: int, timeout: float) -> list[Any]:  # noqa: D102
        ...

    async def ack(self, messages: Sequence[Any]) -> None:  # noqa: D102
        ...

    async def dead_letter(self, message: Any, reason: str) -> None:  # noqa: D102
        ...

    async def release(self, messages: Sequence[Any]) -> None:  # noqa: D102
        ...

    async def publish(self, events: Sequence[bytes], subject: str = "transaction") -> None:  # noqa: D102
        ...

    async def backlog(self) -> int:  # noqa: D102
        ...


class NatsBroker:
    """NATS JetStream: events stream, dead-letter stream, one durable pull consumer.

    Args:
        url: NATS server, e.g. ``nats://127.0.0.1:4222``.
        stream: stream name (subjects ``<stream>.events.*``; dead letters on ``<stream>.dead``).
        durable: durable consumer name (one per consumer group).
        ack_wait: seconds before an unacknowledged batch is redelivered.
    """

    def __init__(self, url: str, stream: str, durable: str = "features", ack_wait: float = 30.0):
        self.url = url
        self.stream = stream
        self.durable = durable
        self.ack_wait = ack_wait
        self.nc: Any = None
        self.js: Any = None
        self._sub: Any = None
        self._pull = _Pull()

    async def connect(self) -> NatsBroker:
        """Connect and create the streams when they do not exist (the consumer is bound by :meth:`fetch`)."""
        import nats
        from nats.js import api
        from nats.js.errors import NotFoundError

        self.nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=3)
        self.js = self.nc.jetstream()
        for name, subjects in (
            (self.stream, [f"{self.stream}.events.*"]),
            (f"{self.stream}_dlq", [f"{self.stream}.dead"]),
        ):
            try:
                await self.js.stream_info(name)
            except NotFoundError:
                await self.js.add_stream(
                    api.StreamConfig(name=name, subjects=subjects, duplicate_window=120.0)
                )
        return self

    async def _bind(self) -> None:
        """Create the durable consumer, or update an existing one to this broker's ``ack_wait``."""
        from nats.js import api
        from nats.js.errors import NotFoundError

        wanted = {"ack_wait": float(self.ack_wait), "max_ack_pending": 100_000}
        try:
            info = await self.js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            info = await self.js.add_consumer(
                self.stream,
                api.ConsumerConfig(
                    name=self.durable,
                    durable_name=self.durable,
                    ack_policy=api.AckPolicy.EXPLICIT,
                    deliver_policy=api.DeliverPolicy.ALL,
                    filter_subject=f"{self.stream}.events.*",
                    **wanted,
                ),
            )
        if any(getattr(info.config, k) != v for k, v in wanted.items()):
            # made by an earlier configuration: the server updates these fields of a durable in place
            info = await self.js.add_consumer(self.stream, info.config.evolve(**wanted))
        got = {k: getattr(info.config, k) for k in wanted}
        if got != wanted:
            raise RuntimeError(f"consumer {self.stream}/{self.durable} kept {got} instead of {wanted}")
        self._pull.subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        self._pull.inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(f"{self._pull.inbox}.*", cb=self._pull.deliver)

    async def fetch(self, max_events: int, timeout: float) -> list[Any]:
        """Up to ``max_events`` messages, waiting at most ``timeout`` seconds for the first.

        As nats.py's ``fetch`` does (a ``no_wait`` pull request for what is there, then, if nothing was, one
        that waits), but delivered to a callback: nats.py awaits each message of a batch with its own
        ``wait_for`` timer, about 50 ms of a 1,000-event batch, against under 10 ms here.
        """
        if self._sub is None:
            await self._bind()
        pull = self._pull
        if len(pull.arrived) < max_events:
            await pull.request(self.nc, max_events - len(pull.arrived), timeout, linger=False)
        if not pull.arrived:
            await pull.request(self.nc, max_events, timeout, linger=True)
        return [pull.arrived.popleft() for _ in range(min(max_events, len(pull.arrived)))]

    async def backlog(self) -> int:
        """Events still to be processed: not yet delivered, or delivered and not acknowledged.

        A batch held by a consumer that died counts until it is redelivered (``ack_wait`` after its
        delivery) and acknowledged.
        """
        if self._sub is None:
            await self._bind()
        info = await self.js.consumer_info(self.stream, self.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def ack(self, messages: Sequence[Any]) -> None:
        """Acknowledge every message (after its batch's features are written), processed when this returns.

        The last is acknowledged with a reply (``ack_sync``): the consumer processes one connection's
        acknowledgements in order, so when it answers, every one before it counts too. A flush only said the
        server had received them, and a backlog question right after could still count some as pending.
        """
        if not messages:
            return
        for m in messages[:-1]:
            await m.ack()
        await messages[-1].ack_sync(timeout=max(5.0, self.ack_wait / 2))

    async def release(self, messages: Sequence[Any]) -> None:
        """Hand fetched, unprocessed messages back (NAK): redelivered now, not after ``ack_wait``."""
        for m in messages:
            await m.nak()
        await self.nc.flush()

    async def dead_letter(self, message: Any, reason: str) -> None:
        """Store the event and its reason in the dead-letter stream (deduplicated by stream sequence)."""
        seq = message.metadata.sequence.stream
        headers = {"Nats-Msg-Id": f"{self.stream}:{seq}", "Creditops-Reason": reason[:4000]}
        await self.js.publish(f"{self.stream}.dead", message.data, headers=headers)

    async def publish(self, events: Sequence[bytes], subject: str = "transaction") -> None:
        """Publish events (fire-and-forget core publishes captured by the stream, then one flush)."""
        target = f"{self.stream}.events.{subject}"
        for event in events:
            await self.nc.publish(target, event)
        await self.nc.flush()

    async def dead_letters(self) -> list[tuple[bytes, str]]:
        """Every dead-lettered event and its reason (for reports and tests)."""
        info = await self.js.stream_info(f"{self.stream}_dlq")
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else []:
            msg = await self.js.get_msg(f"{self.stream}_dlq", seq)
            out.append((msg.data, (msg.headers or {}).get("Creditops-Reason", "")))
        return out

    async def close(self, delete: bool = False) -> None:
        """Disconnect (delivered, never fetched messages handed back); with ``delete`` remove both streams."""
        if self._pull.arrived and self.nc is not None and self.nc.is_connected:
            await self.release(list(self._pull.arrived))
            self._pull.arrived.clear()
        if self.js is not None and delete:
            for name in (self.stream, f"{self.stream}_dlq"):
                try:
                    await self.js.delete_stream(name)
                except Exception:  # noqa: BLE001  # nosec B110  # the stream may already be gone (cleanup)
                    pass
        if self.nc is not None:
            await self.nc.close()


class _Pull:
    """JetStream pull requests answered on ``<inbox>.<n>`` (one subject per request), collected by a callback.

    A request ends when its batch has arrived or the server sends it a status on its subject (404 nothing
    there for a ``no_wait`` request, 408 expired, 409 ...). Messages come on the stream's subject, so any
    that arrive count towards the current request; those of an earlier request that arrive late (its wait
    outlived the fetch that made it) are kept for the next fetch, as nats.py keeps them in its queue.
    """

    def __init__(self) -> None:
        self.subject = ""
        self.inbox = ""
        self.arrived: deque[Any] = deque()
        self._count = 0
        self._current = ""
        self._got = 0
        self._ended = False
        self._wake = asyncio.Event()

    async def deliver(self, msg: Any) -> None:
        """Subscription callback: a message for the consumer, or the status that ends a request."""
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:  # on the stream's subject, whichever request it answers
            self.arrived.append(msg)
            self._got += 1
        elif status != "100" and msg.subject == self._current:  # 100 is an idle heartbeat
            self._ended = True
        self._wake.set()

    async def request(self, nc: Any, batch: int, timeout: float, linger: bool) -> None:
        """Ask for ``batch`` messages; return when they came, the request ended or ``timeout`` passed.

        ``linger`` waits on the server up to ``timeout`` for messages and returns at the first one.
        """
        self._count += 1
        self._current, self._got, self._ended = f"{self.inbox}.{self._count}", 0, False
        ask = {"batch": batch, "expires": int(timeout * 1e9)} if linger else {"batch": batch, "no_wait": True}
        await nc.publish(self.subject, json.dumps(ask).encode(), reply=self._current)
        deadline = time.monotonic() + timeout
        while not (self._ended or self._got >= batch or (linger and self._got)):
            self._wake.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return


@dataclass
class ConsumerStats:
    """Totals of a consumer run (``events == applied + duplicates + expired + dead_lettered``)."""

    batches: int = 0
    events: int = 0
    applied: int = 0
    duplicates: int = 0
    expired: int = 0
    dead_lettered: int = 0
    applicants: int = 0
    seconds: float = 0.0
    outcomes: list[BatchOutcome] = field(default_factory=list)

    def add(self, outcome: BatchOutcome) -> None:
        """Count one batch."""
        self.batches += 1
        self.events += outcome.events
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates
        self.expired += outcome.expired
        self.dead_lettered += outcome.dead_lettered
        self.applicants += outcome.applicants


async def consume(
    broker: Broker,
    processor: StreamProcessor,
    *,
    batch_size: int = _DEFAULTS.batch_size,
    fetch_timeout: float = 0.5,
    stop_when_idle: bool = False,
    max_events: int | None = None,
    on_batch: Callable[[BatchOutcome, Sequence[Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    idle_grace: float | None = None,
    prefetch: bool = True,
    flush_events: int = _DEFAULTS.offline_flush_events,
    flush_seconds: float = _DEFAULTS.offline_flush_seconds,
) -> ConsumerStats:
    """Fetch, process, dead-letter, write offline, acknowledge, until stopped.

    A processed batch is in the online store; its rows go to the offline store with those of the next
    batches, once ``flush_events`` events wait, the oldest waited ``flush_seconds``, a fetch brings nothing,
    or the loop stops; only then are those batches acknowledged. A flush by size or age writes in a worker
    thread while the loop goes on with the next batches (the Parquet write paused the loop ~25 ms a second,
    and the events arriving meanwhile waited for it); one flush at a time, its batches acknowledged when
    it is done. A loop that ends by an error finishes the flush under way (those batches are complete) and
    acknowledges nothing more: what it held is redelivered after ``ack_wait``.

    Args:
        broker: the connected broker.
        processor: the stream processor.
        batch_size: events per fetch.
        fetch_timeout: seconds to wait for a batch.
        stop_when_idle: return after a fetch that brings nothing once the broker's backlog is empty: events
            still unacknowledged (a crashed consumer's batch, redelivered after ``ack_wait``) are waited for.
        max_events: return once this many events were processed.
        on_batch: called after each batch is in the online store and before it is acknowledged (metrics,
            tests).
        should_stop: polled between batches (signal handling).
        idle_grace: with ``stop_when_idle``, the longest wait in seconds without a message while the backlog
            is not empty (None: twice the broker's ``ack_wait``, by when a redelivery is long due).
        prefetch: after a full batch (a backlog), fetch the next one while this one is processed (that
            batch is processed in a worker thread, so the event loop can run the fetch). The order of a
            batch's steps is unchanged (features written, then acknowledged); a prefetched batch the loop
            does not process (stopped, or an error) is released to the broker for immediate redelivery.
            Below a full batch nothing is fetched ahead: the next batch is what arrived meanwhile.
        flush_events: events processed and not yet written offline that make the loop flush.
        flush_seconds: the longest a processed batch waits for its offline write (keep it well below the
            broker's ``ack_wait``, or the batch is redelivered meanwhile).
    """
    # Everything alive now (store, registry, clients) lives as long as the loop: frozen, the collector's
    # full passes skip it. Unfrozen, a full pass over it paused the loop ~150 ms, twice in 30 s at 1k ev/s.
    gc.freeze()
    stats = ConsumerStats()
    start = last = time.perf_counter()
    if idle_grace is None:
        idle_grace = 2.0 * float(getattr(broker, "ack_wait", 0.0)) + fetch_timeout
    ahead: asyncio.Task | None = None  # the next batch, fetched while this one is processed
    held: list[Any] = []  # processed batches' messages, acknowledged once their rows are written offline
    held_since = 0.0
    flushing: asyncio.Task | None = None  # the offline write (then acknowledgement) under way

    async def write_then_ack(kept: dict, messages: list[Any], in_thread: bool) -> None:
        if in_thread:
            await asyncio.to_thread(processor.write_offline, kept)
        else:
            processor.write_offline(kept)
        if messages:
            await broker.ack(messages)

    async def settle(background: bool = False) -> None:
        nonlocal flushing
        if flushing is not None:
            task, flushing = flushing, None
            await task  # the write under way first: batches are acknowledged in order, one flush at a time
        kept, messages = processor.take_pending(), held[:]
        held.clear()
        if background and kept:
            flushing = asyncio.create_task(write_then_ack(kept, messages, in_thread=True))
        else:
            await write_then_ack(kept, messages, in_thread=False)

    try:
        while not (should_stop and should_stop()):
            if flushing is not None and flushing.done():
                task, flushing = flushing, None
                await task  # raises what the background write raised
            if ahead is not None:
                messages, ahead = await ahead, None
            else:
                messages = await broker.fetch(batch_size, fetch_timeout)
            if not messages:
                await settle()  # idle: nothing to batch the offline write with
                if stop_when_idle and (
                    time.perf_counter() - last > idle_grace or await broker.backlog() == 0
                ):
                    break
                continue
            last = time.perf_counter()
            raws = [m.data for m in messages]
            if prefetch and len(messages) >= batch_size:  # a backlog: fetch the next batch meanwhile
                ahead = asyncio.create_task(broker.fetch(batch_size, fetch_timeout))
                # in a worker thread, so the event loop runs that fetch
                outcome = await asyncio.to_thread(processor.process, raws)
            else:  # below a full batch, in the loop (a thread sharing the GIL with it was slower here)
                outcome = processor.process(raws)
            for position, rejected in outcome.rejected:
                await broker.dead_letter(messages[position], rejected.reason)
            if on_batch is not None:
                on_batch(outcome, messages)
            if not held:
                held_since = time.perf_counter()
            held.extend(messages)
            if not processor.pending:
                await settle()  # nothing to write offline: acknowledge now
            elif len(held) >= flush_events or time.perf_counter() - held_since >= flush_seconds:
                await settle(background=True)
            stats.add(outcome)
            if max_events is not None and stats.events >= max_events:
                break
        await settle()  # stopped: what was processed is written offline and acknowledged
        processor.settle()  # and the last batch's prune is done
    finally:
        if flushing is not None:  # an error left it running: its batches are complete, finish them
            await flushing
        if ahead is not None:  # fetched, never processed: handed back for redelivery now
            await broker.release(await ahead)
    stats.seconds = time.perf_counter() - start
    return stats
