"""A QuicConnection whose packet writer visits only streams with work to do
(RFC 9000 §2 streams, §3 stream states, §4.2 MAX_STREAM_DATA, §4.6 MAX_STREAMS, §13.3
retransmission).

aioquic 1.7's ``QuicConnection._write_application`` walks every open stream twice for every
packet it builds: once to announce stream-level flow-control limits, once over its send
queue. A MoQT draft-18 session keeps one request stream open per track (a relay offers each
track under SUBSCRIBE_TRACKS as a PUBLISH on its own bidirectional stream), so a member of a
large group holds hundreds of idle streams and every packet costs O(open streams).

`ParkingQuicConnection` keeps aioquic's packet writer and hands it, for the duration of each
call, only the streams that can contribute a frame:

- the send queue holds a stream while it has something to send, something in flight (so a
  loss re-queues data or a FIN or a RESET_STREAM with no hook), a STOP_SENDING the peer has
  not answered, is blocked by MAX_STREAMS, or has finished (so aioquic discards it and lets
  the peer open another one). Every other stream is *parked*; it is woken by every event
  that can give it work: the application writing, ending, resetting or stopping it, and any
  frame of the peer's naming it (STREAM, RESET_STREAM, STOP_SENDING, MAX_STREAM_DATA).
- the limits walk visits a stream only after the peer sent it data (or reset it), until no
  MAX_STREAM_DATA is due, and again when a MAX_STREAM_DATA frame for it is lost.

Everything else (frame layout, ordering of the queue, flow control) is aioquic's own code.
The private attributes this relies on are checked at import (`check_aioquic`).
"""

from __future__ import annotations

from typing import Any

from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder
from aioquic.quic.stream import QuicStream, QuicStreamReceiver, QuicStreamSender

from moqmls.moqt.errors import IncompatibleAioquicError

#: What `ParkingQuicConnection` uses of aioquic's internals, and where.
_CONNECTION_METHODS = (
    "_write_application",
    "_get_or_create_stream",
    "_get_or_create_stream_for_send",
    "_on_max_stream_data_delivery",
    "_write_stream_limits",
    "stop_stream",
)
_WRITER_NAMES = ("_streams", "_streams_queue", "_write_stream_limits", "is_finished")
_INIT_NAMES = ("_streams", "_streams_queue")
_STREAM_FIELDS = ("is_blocked", "max_stream_data_local", "max_stream_data_local_sent")
_SENDER_FIELDS = (
    "buffer_is_empty",
    "is_finished",
    "reset_pending",
    "_buffer_start",
    "_buffer_stop",
    "_buffer_fin",
    "_reset_error_code",
)
_RECEIVER_FIELDS = ("highest_offset", "is_finished", "stop_pending", "_stop_error_code")


def check_aioquic() -> None:
    """Fail loudly if aioquic's stream internals differ from those this module was written for."""
    missing = [m for m in _CONNECTION_METHODS if not callable(getattr(QuicConnection, m, None))]
    writer = QuicConnection._write_application.__code__.co_names
    missing += [f"_write_application uses {n}" for n in _WRITER_NAMES if n not in writer]
    init = QuicConnection.__init__.__code__.co_names
    missing += [f"QuicConnection.{n}" for n in _INIT_NAMES if n not in init]
    stream = QuicStream(stream_id=0)
    missing += [f"QuicStream.{f}" for f in _STREAM_FIELDS if not hasattr(stream, f)]
    sender = QuicStreamSender(stream_id=0, writable=True)
    missing += [f"QuicStreamSender.{f}" for f in _SENDER_FIELDS if not hasattr(sender, f)]
    receiver = QuicStreamReceiver(stream_id=0, readable=True)
    missing += [f"QuicStreamReceiver.{f}" for f in _RECEIVER_FIELDS if not hasattr(receiver, f)]
    if missing:
        raise IncompatibleAioquicError(
            "moqmls.moqt.quic_streams was written for aioquic 1.7's stream internals; "
            f"the installed aioquic lacks: {', '.join(missing)}"
        )


check_aioquic()


def has_work(stream: QuicStream) -> bool:
    """Whether aioquic's send queue must visit `stream` (RFC 9000 §3.1, §3.2, §13.3)."""
    sender, receiver = stream.sender, stream.receiver
    if stream.is_blocked or sender.reset_pending or receiver.stop_pending:
        return True
    if not sender.buffer_is_empty or (sender.is_finished and receiver.is_finished):
        return True
    in_flight = (
        sender._buffer_start < sender._buffer_stop
        or sender._buffer_fin is not None
        or sender._reset_error_code is not None
    )
    if in_flight and not sender.is_finished:
        return True
    # a STOP_SENDING stays due until the peer ends the stream (RFC 9000 §13.3)
    return receiver._stop_error_code is not None and not receiver.is_finished


def limit_due(stream: QuicStream) -> bool:
    """Whether aioquic would raise or resend this stream's MAX_STREAM_DATA (RFC 9000 §4.2)."""
    local = stream.max_stream_data_local
    if local and stream.receiver.highest_offset * 2 > local:
        return True
    return stream.max_stream_data_local_sent != local


class ParkingQuicConnection(QuicConnection):
    """A QuicConnection whose packets cost O(streams with work), not O(open streams)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_parking()

    def _init_parking(self) -> None:
        # every existing stream starts awake: the first write decides which to park
        self._woken: dict[QuicStream, None] = dict.fromkeys(self._streams.values())
        self._limits_due: set[QuicStream] = set(self._streams.values())

    # --- every event that can give a parked stream work ------------------------------------

    def _get_or_create_stream(self, frame_type: int, stream_id: int) -> QuicStream:
        stream = super()._get_or_create_stream(frame_type, stream_id)
        # any frame of the peer's naming a stream passes here before it changes the stream
        self._woken[stream] = None
        self._limits_due.add(stream)
        return stream

    def _get_or_create_stream_for_send(self, stream_id: int) -> QuicStream:
        stream = super()._get_or_create_stream_for_send(stream_id)
        self._woken[stream] = None
        return stream

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Request that the peer stop sending (RFC 9000 §3.5); wakes the stream."""
        super().stop_stream(stream_id, error_code)
        self._woken[self._streams[stream_id]] = None

    def _on_max_stream_data_delivery(self, delivery: QuicDeliveryState, stream: QuicStream) -> None:
        super()._on_max_stream_data_delivery(delivery, stream)
        # the loss may be noticed after the stream was discarded: then nothing is due
        if delivery != QuicDeliveryState.ACKED and self._streams.get(_id(stream)) is stream:
            self._limits_due.add(stream)

    # --- the packet writer sees only streams with work --------------------------------------

    def _write_application(self, builder: QuicPacketBuilder, network_path: Any, now: float) -> None:
        streams = self._streams
        queue = self._awake_queue()
        view: dict[int, QuicStream] = {_id(stream): stream for stream in queue}
        for stream in self._limits_due:
            view.setdefault(_id(stream), stream)
        size = len(view)
        self._streams, self._streams_queue = view, queue
        try:
            super()._write_application(builder, network_path, now)
        finally:
            self._streams = streams
            if len(view) < size:  # aioquic discarded finished streams from the view
                self._forget_discarded(queue, view)
            self._streams_queue = [s for s in self._streams_queue if has_work(s)]
            if self._limits_due:
                self._limits_due = {s for s in self._limits_due if limit_due(s)}

    def _awake_queue(self) -> list[QuicStream]:
        """The send queue plus the streams woken since the last write, each once."""
        queue = self._streams_queue
        if self._woken:
            queued = set(queue)
            streams = self._streams
            for stream in self._woken:
                # discards happen only in writes, which empty _woken: this is a safety net
                if stream not in queued and streams.get(_id(stream)) is stream:
                    queue.append(stream)
            self._woken = {}
        return queue

    def _forget_discarded(self, queue: list[QuicStream], view: dict[int, QuicStream]) -> None:
        """Remove from the stream table (and the limits watch) what aioquic discarded."""
        streams = self._streams
        for stream in queue:
            sid = _id(stream)
            if sid not in view and streams.get(sid) is stream:
                del streams[sid]
                self._limits_due.discard(stream)


def _id(stream: QuicStream) -> int:
    """A stream's ID; aioquic types it optional for its crypto streams, never seen here."""
    sid = stream.stream_id
    assert sid is not None
    return sid


def park_idle_streams(connection: QuicConnection) -> ParkingQuicConnection:
    """Turn a stock QuicConnection, made by aioquic's client or server, into a parking one.

    aioquic's `connect` and `QuicServer` build the QuicConnection themselves and offer no
    class to use instead; the subclass adds methods only, so the instance can change class.
    """
    if isinstance(connection, ParkingQuicConnection):
        return connection
    if type(connection) is not QuicConnection:
        raise TypeError(f"cannot park streams of a {type(connection).__name__}")
    connection.__class__ = ParkingQuicConnection
    assert isinstance(connection, ParkingQuicConnection)
    connection._init_parking()
    return connection
