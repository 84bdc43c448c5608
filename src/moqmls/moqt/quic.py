"""The asyncio adapter: MoQT sessions over raw QUIC on aioquic
(draft-ietf-moq-transport-18 §3.1.3 Native QUIC, §3.1 ALPN; ``moqt-18`` and ``moqt-22``).

`MoQTProtocol` is an aioquic `QuicConnectionProtocol` that feeds QUIC events into a
sans-I/O `MoQTSession` (profile chosen by the negotiated ALPN, `PROFILES`), executes its
commands and hands its events to a callback. Both sides offer every draft in `PROFILES`
unless told otherwise (`DEFAULT_ALPNS`; the server's order picks among those in common);
a client refused for want of a common draft gets `VersionNegotiationError`. QUIC DATAGRAM
support is negotiated as §3.1 requires. Every connection, client and server side, runs on
`quic_streams.ParkingQuicConnection`, so the request streams a session keeps open per track
cost nothing while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.congestion.base import register_congestion_control
from aioquic.quic.congestion.reno import RenoCongestionControl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from moqmls.moqt import events as ev
from moqmls.moqt.codec import Properties
from moqmls.moqt.errors import MoQTError, VersionNegotiationError
from moqmls.moqt.profile import PROFILES, profile_for_alpn
from moqmls.moqt.quic_streams import park_idle_streams
from moqmls.moqt.session import (
    CloseConnection,
    MoQTSession,
    StopSending,
    StreamReset,
    StreamWrite,
)

log = logging.getLogger(__name__)

DEFAULT_ALPNS: tuple[str, ...] = tuple(PROFILES)
EventHandler = Callable[["MoQTProtocol", ev.Event], None]
MAX_DATAGRAM_FRAME = 65536
SOCKET_BUFFER = 1 << 22
MAX_DATAGRAM_SIZE = 1452
ACK_DELAY = 0.01
#: Most datagrams a server reads per wake-up of its socket (asyncio reads one).
READ_BATCH = 64
IMPLEMENTATION = b"moqmls 0.1"
#: QUIC CRYPTO_ERROR carrying TLS alert 120 no_application_protocol (RFC 9001 §4.8,
#: RFC 7301 §3.2): the server accepts none of the ALPNs we offered.
NO_APPLICATION_PROTOCOL = 0x100 + 120
#: Streams of each kind aioquic lets the peer open at first (it offers no setting for it).
AIOQUIC_MAX_STREAMS = 128


class NewRenoCongestionControl(RenoCongestionControl):
    """NewReno as RFC 9002 §7.3 specifies it: slow start ends on loss only.

    aioquic's "reno" also leaves slow start when it sees the RTT grow; on a busy host the
    RTT of a Python endpoint wobbles, which stalls the window far below the path's capacity.
    """

    def on_rtt_measurement(self, *, now: float, rtt: float) -> None:
        return None


CONGESTION_CONTROL = "moqmls-newreno"
register_congestion_control(CONGESTION_CONTROL, NewRenoCongestionControl)


def quic_configuration(
    is_client: bool,
    alpns: tuple[str, ...] = DEFAULT_ALPNS,
    idle_timeout: float = 30.0,
    max_datagram_size: int = MAX_DATAGRAM_SIZE,
) -> QuicConfiguration:
    """A QUIC configuration for MoQT: ALPNs, datagrams on, roomy flow control.

    UDP payloads default to 1452 bytes (an Ethernet path's usual size) rather than
    QUIC's 1200-byte floor, so a 1,200-byte object and its headers fit in one packet.
    """
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=list(alpns),
        max_datagram_frame_size=MAX_DATAGRAM_FRAME,
        idle_timeout=idle_timeout,
        max_data=1 << 24,
        max_stream_data=1 << 22,
        max_datagram_size=max_datagram_size,
        congestion_control_algorithm=CONGESTION_CONTROL,
    )


def self_signed_certificate(
    host: str = "localhost",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A fresh self-signed P-256 certificate for `host`, localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName("localhost")]
    alt.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    if _is_ip(host) and host != "127.0.0.1":
        alt.append(x509.IPAddress(ipaddress.ip_address(host)))
    elif not _is_ip(host) and host != "localhost":
        alt.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def certificate_pem(cert: x509.Certificate) -> bytes:
    """PEM encoding of a certificate (for clients that trust it)."""
    return cert.public_bytes(serialization.Encoding.PEM)


class MoQTProtocol(QuicConnectionProtocol):
    """One QUIC connection carrying one MoQT session."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a session keeps a request stream open per track: packets must not walk them all
        park_idle_streams(self._quic)
        self.session: MoQTSession | None = None
        self.handler: EventHandler | None = None
        self.setup_options: Properties = ((0x07, IMPLEMENTATION),)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.terminated: asyncio.Future[tuple[int, str]] = (
            asyncio.get_running_loop().create_future()
        )
        # A connection that fails its handshake (say, no ALPN in common) fails `ready`
        # with nobody left to await it; reading the exception here keeps asyncio from
        # logging "Future exception was never retrieved". Awaiting it still raises.
        self.ready.add_done_callback(_retrieve)
        self._early: list[qe.QuicEvent] = []
        # Acknowledge at most every ACK_DELAY (below the 25 ms max_ack_delay we advertise)
        # rather than every packet: at hundreds of objects per second per session, ACKs
        # are half the packets a relay would otherwise handle.
        self._quic._ack_delay = ACK_DELAY
        self._flush_scheduled = False
        self._in_flush = False
        self.context: Any = None

    def allow_peer_streams(self, count: int) -> None:
        """Let the peer open up to `count` bidirectional and `count` unidirectional streams.

        RFC 9000 §4.6: the initial_max_streams_* transport parameters, or MAX_STREAMS frames
        once the handshake has begun. aioquic 1.7 starts every connection at
        `AIOQUIC_MAX_STREAMS` and raises it only as streams close, with no configuration
        for it; a MoQT peer that keeps one request stream open per track (a relay offering
        each track under SUBSCRIBE_TRACKS as a PUBLISH, draft-18 §3.3) needs more at once.
        Never lowers a limit already granted.
        """
        quic = self._quic
        for limit in (quic._local_max_streams_bidi, quic._local_max_streams_uni):
            # before the handshake the transport parameters carry it (and one redundant
            # MAX_STREAMS follows); after, the next packet carries a MAX_STREAMS frame
            limit.value = max(limit.value, count)
        if self._transport is not None:
            self.flush()

    # --- aioquic callbacks ---------------------------------------------------------------

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        # aioquic transmits after every datagram; a relay receives an ACK from each
        # subscriber every other packet, so transmit once per loop iteration instead
        self._quic.receive_datagram(cast(bytes, data), addr, now=self._loop.time())
        self._process_events()
        self.schedule_flush()

    def quic_event_received(self, event: qe.QuicEvent) -> None:
        if isinstance(event, qe.HandshakeCompleted):
            self._start(event.alpn_protocol)
            return
        if isinstance(event, qe.ConnectionTerminated):
            if self.session is not None:
                self.session.connection_lost(event.error_code, event.reason_phrase)
                self.flush()
            if not self.terminated.done():
                self.terminated.set_result((event.error_code, event.reason_phrase))
            if not self.ready.done():
                self.ready.set_exception(
                    MoQTError(f"connection closed: {event.reason_phrase}", event.error_code)
                )
            return
        if self.session is None:
            self._early.append(event)
            return
        self._feed(event)
        self._pump()

    def _start(self, alpn: str | None) -> None:
        try:
            profile = profile_for_alpn(alpn)
        except MoQTError as exc:
            self._quic.close(error_code=exc.code, reason_phrase=str(exc))
            self.transmit()
            return
        self.session = MoQTSession(profile, is_client=self._quic.configuration.is_client)
        self.session.initiate(self.setup_options)
        for early in self._early:
            self._feed(early)
        self._early.clear()
        self.flush()

    def _feed(self, event: qe.QuicEvent) -> None:
        session = self.session
        assert session is not None
        if isinstance(event, qe.StreamDataReceived):
            session.receive_stream_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, qe.StreamReset):
            session.stream_reset(event.stream_id, event.error_code)
        elif isinstance(event, qe.StopSendingReceived):
            session.stop_sending_received(event.stream_id, event.error_code)

    # --- output ---------------------------------------------------------------------------

    def schedule_flush(self) -> None:
        """Flush soon, coalescing many session calls into one transmit."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Execute pending session commands, dispatch events, transmit."""
        self._flush_scheduled = False
        self._pump()
        self.transmit()

    def _pump(self) -> bool:
        """Execute commands and dispatch events until quiet; True if anything was written."""
        session = self.session
        if session is None or self._in_flush:
            return False
        self._in_flush = True
        wrote = False
        try:
            for _ in range(1000):
                commands = session.commands()
                for command in commands:
                    self._execute(command)
                events = session.events()
                for event in events:
                    self._dispatch(event)
                wrote = wrote or bool(commands)
                if not commands and not events:
                    break
        finally:
            self._in_flush = False
        return wrote

    def _execute(self, command: Any) -> None:
        quic = self._quic
        try:
            if isinstance(command, StreamWrite):
                quic.send_stream_data(command.stream_id, command.data, command.end_stream)
            elif isinstance(command, StreamReset):
                quic.reset_stream(command.stream_id, command.code)
            elif isinstance(command, StopSending):
                quic.stop_stream(command.stream_id, command.code)
            elif isinstance(command, CloseConnection):
                quic.close(error_code=command.code, reason_phrase=command.reason)
        except (ValueError, AssertionError):
            pass  # the stream already ended on the QUIC side; nothing left to do

    def _dispatch(self, event: ev.Event) -> None:
        if isinstance(event, ev.SessionReady) and not self.ready.done():
            self.ready.set_result(None)
        if isinstance(event, ev.SessionTerminated):
            if not self.ready.done():
                self.ready.set_exception(MoQTError(event.reason, event.code))
            if not self.terminated.done():
                self.terminated.set_result((event.code, event.reason))
        if self.handler is not None:
            try:
                self.handler(self, event)
            except Exception as exc:  # an application bug must not kill the event loop
                log.exception("MoQT event handler failed")
                if self.session is not None:
                    self.session.close(0x1, f"handler failed: {exc!r}")

    def close_session(self, code: int = 0, reason: str = "") -> None:
        """Close the MoQT session and its QUIC connection."""
        if self.session is not None:
            self.session.close(code, reason)
            self.flush()
        else:
            self._quic.close(error_code=code, reason_phrase=reason)
            self.transmit()


async def open_connection(
    host: str,
    port: int,
    *,
    verify: bool | str | bytes = True,
    alpns: tuple[str, ...] = DEFAULT_ALPNS,
    setup_options: Properties = (),
    handler: EventHandler | None = None,
    timeout: float = 10.0,
    max_streams: int | None = None,
) -> tuple[MoQTProtocol, contextlib.AsyncExitStack]:
    """Dial a MoQT server over raw QUIC; returns the protocol once SETUP is exchanged.

    `verify` is True (system trust), False (no verification), a CA file path (str) or
    PEM bytes of a certificate to trust. `max_streams`: streams of each kind the server
    may open towards us at once (`MoQTProtocol.allow_peer_streams`); None keeps aioquic's
    `AIOQUIC_MAX_STREAMS`.
    """
    config = quic_configuration(True, alpns)
    if verify is False:
        config.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        config.load_verify_locations(cafile=verify)
    elif isinstance(verify, bytes):
        config.load_verify_locations(cadata=verify)
    config.server_name = host if not _is_ip(host) else "localhost"
    stack = contextlib.AsyncExitStack()

    created: list[MoQTProtocol] = []

    def create(*args: Any, **kwargs: Any) -> MoQTProtocol:
        proto = MoQTProtocol(*args, **kwargs)
        proto.handler = handler
        proto.setup_options = ((0x07, IMPLEMENTATION), *setup_options)
        if max_streams is not None:
            proto.allow_peer_streams(max_streams)
        created.append(proto)
        return proto

    try:
        async with asyncio.timeout(timeout):
            proto = await stack.enter_async_context(
                connect(host, port, configuration=config, create_protocol=create)
            )
            assert isinstance(proto, MoQTProtocol)
            enlarge_socket_buffers(proto._transport)
            await proto.ready
    except ConnectionError as exc:
        await stack.aclose()
        refused = _handshake_error(created, alpns)
        if refused is None:
            raise
        raise refused from exc
    except BaseException:
        await stack.aclose()
        raise
    return proto, stack


def _handshake_error(created: list[MoQTProtocol], alpns: tuple[str, ...]) -> MoQTError | None:
    """The MoQTError for a handshake the server refused for want of a common ALPN."""
    if not created or not created[0].terminated.done():
        return None
    code, reason = created[0].terminated.result()
    if code != NO_APPLICATION_PROTOCOL:
        return None
    return VersionNegotiationError(
        f"the server accepts none of the MoQT drafts offered ({', '.join(alpns)}): {reason}"
    )


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def enlarge_socket_buffers(transport: Any, size: int = SOCKET_BUFFER) -> None:
    """Ask for large UDP buffers: a slow reader must not drop packets on a burst."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, size)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def start_server(
    host: str,
    port: int,
    *,
    certificate: x509.Certificate,
    private_key: Any,
    on_connection: Callable[[MoQTProtocol], None],
    alpns: tuple[str, ...] = DEFAULT_ALPNS,
    idle_timeout: float = 30.0,
    max_streams: int | None = None,
) -> tuple[QuicServer, int]:
    """Listen for MoQT sessions; `on_connection` sees each new protocol. Returns the port.

    `max_streams`: streams of each kind each client may open at once
    (`MoQTProtocol.allow_peer_streams`); None keeps aioquic's `AIOQUIC_MAX_STREAMS`.
    """
    config = quic_configuration(False, alpns, idle_timeout)
    config.certificate = certificate
    config.private_key = private_key

    def create(*args: Any, **kwargs: Any) -> MoQTProtocol:
        proto = MoQTProtocol(*args, **kwargs)
        if max_streams is not None:
            proto.allow_peer_streams(max_streams)
        on_connection(proto)
        return proto

    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: BatchingQuicServer(configuration=config, create_protocol=create),
        local_addr=(host, port),
    )
    enlarge_socket_buffers(transport)
    bound = transport.get_extra_info("sockname")[1]
    return server, int(bound)


class BatchingQuicServer(QuicServer):
    """A QuicServer that reads every queued datagram (up to `READ_BATCH`) per wake-up.

    asyncio hands a datagram endpoint one datagram per loop iteration; with the
    connections' transmits coalesced per iteration (`MoQTProtocol.flush`), draining the
    socket lets a burst of ACKs from many subscribers cost one transmit per connection.
    """

    _rx: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        # a duplicate descriptor of the same non-blocking socket, read directly
        self._rx = sock.dup() if sock is not None else None

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        super().datagram_received(data, addr)
        rx = self._rx
        for _ in range(READ_BATCH - 1):
            if rx is None:
                return
            try:
                more, source = rx.recvfrom(1 << 16)
            except OSError:  # BlockingIOError: drained
                return
            super().datagram_received(more, source)

    def close(self) -> None:
        super().close()
        if self._rx is not None:
            self._rx.close()
            self._rx = None
