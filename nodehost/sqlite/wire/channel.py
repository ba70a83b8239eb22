"""One client's path to a cluster's leader over dqlite's wire protocol: sockets to
members, the search for the leader, and the rules for resending a request.

Rules:
- A link is one socket to one member, after the handshake; it carries one request at a
  time and bounds every wait by a deadline. Bytes from a member go through the bounded
  codec; a malformed message ends the link (the stream cannot be trusted after it).
- The leader is found with LEADER requests, starting with the last leader, then every
  address given and learnt from CLUSTER; a member naming another leader is followed.
  When no member answers in time the error names each one's failure.
- A request is resent only when that cannot apply it twice: a read, always; a request
  that never left; a write whose answer was lost only to a server that deduplicates by
  session (same sequence number). Inside a transaction nothing is resent: the
  transaction lived on the lost link.
- Nothing here knows PEP 249 cursors: client.py builds the connection on top.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from enum import Enum

from nodehost.sqlite import policy
from nodehost.sqlite.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)
from nodehost.sqlite.members import NodeInfo, Role
from nodehost.sqlite.wire import codec

#: SQLite result codes the client acts on: the request was not applied (not the leader),
#: or may have been (leadership lost while it was being committed).
NOT_LEADER_CODES = frozenset({10250, 8202})  # SQLITE_IOERR_NOT_LEADER, and its legacy value
LEADERSHIP_LOST_CODES = frozenset({10506, 8458})  # SQLITE_IOERR_LEADERSHIP_LOST, legacy

DEFAULT_TIMEOUT = 10.0
BACKOFF_FIRST = 0.02
BACKOFF_MAX = 0.5


def parse_addresses(addresses: str | Sequence[str]) -> list[str]:
    """Member addresses from "host:port,host:port" or a sequence of "host:port"."""
    items = addresses.split(",") if isinstance(addresses, str) else list(addresses)
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InterfaceError(f"a member address is a str, not {type(item).__name__}")
        address = item.strip()
        if not address:
            continue
        split_address(address)
        if address not in result:
            result.append(address)
    if not result:
        raise InterfaceError("no member address given (expected host:port[,host:port...])")
    return result


def split_address(address: str) -> tuple[str, int]:
    host, separator, port_text = address.rpartition(":")
    if not separator or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InterfaceError(f"{address!r} is not a member address (host:port)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def client_tls(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS context for a cluster using mutual TLS: the members' certificates are checked
    against the cluster's CA (not against a host name: members are known by address)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca_file)
    context.load_cert_chain(cert_file, key_file)
    return context


_CLASSES: dict[int, type[Error]] = {
    codec.ErrorClass.INTERFACE: InterfaceError,
    codec.ErrorClass.DATABASE: DatabaseError,
    codec.ErrorClass.DATA: DataError,
    codec.ErrorClass.OPERATIONAL: OperationalError,
    codec.ErrorClass.INTEGRITY: IntegrityError,
    codec.ErrorClass.INTERNAL: InternalError,
    codec.ErrorClass.PROGRAMMING: ProgrammingError,
    codec.ErrorClass.NOT_SUPPORTED: NotSupportedError,
}


def error_for(failure: codec.FailureResponse) -> Error:
    """The exception the server named (nodehost), else the one sqlite3 would raise for the
    code (dqlite)."""
    cls = _CLASSES.get(failure.error_class)
    if cls is not None:
        return cls(failure.message, failure.code)
    return policy.error_for(failure.code, failure.message)


# -- one connection to one member ---------------------------------------------------------


class Gone(Exception):
    """The link failed. `sent` is True when the request may have reached the member."""

    def __init__(self, reason: str, sent: bool) -> None:
        super().__init__(reason)
        self.sent = sent


def remaining(deadline: float) -> float:
    return deadline - time.monotonic()


class Link:
    """A socket to one member, after the handshake; requests strictly one at a time."""

    def __init__(self, address: str, sock: socket.socket, max_body: int) -> None:
        self.address = address
        self._socket = sock
        self._max_body = max_body
        self.features = 0
        self.closed = False

    @classmethod
    def open(cls, address: str, deadline: float, tls: ssl.SSLContext | None, max_body: int) -> Link:
        host, port = split_address(address)
        budget = remaining(deadline)
        if budget <= 0:
            raise Gone("no time left to connect", sent=False)
        try:
            sock = socket.create_connection((host, port), timeout=budget)
        except OSError as error:
            raise Gone(describe(error), sent=False) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock.settimeout(max(remaining(deadline), 0.001))
                sock = tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(max(remaining(deadline), 0.001))
            sock.sendall(codec.encode_handshake())
        except (OSError, ssl.SSLError) as error:
            sock.close()
            raise Gone(describe(error), sent=False) from None
        return cls(address, sock, max_body)

    def send(self, request: codec.Request, deadline: float) -> None:
        data = codec.encode_request(request)
        try:
            self._socket.settimeout(max(remaining(deadline), 0.001))
            self._socket.sendall(data)
        except OSError as error:
            self.close()
            raise Gone(describe(error), sent=True) from None

    def receive(
        self, deadline: float, cluster_format: int = codec.ClusterFormat.V1
    ) -> codec.Response:
        try:
            header = codec.Header.decode(self._read(codec.HEADER_SIZE, deadline), self._max_body)
            body = self._read(header.body_size, deadline)
            return codec.decode_response(header, body, cluster_format=cluster_format)
        except codec.DecodeError as error:
            self.close()
            raise Gone(f"{self.address} sent a malformed message: {error}", sent=True) from None

    def call(
        self,
        request: codec.Request,
        deadline: float,
        cluster_format: int = codec.ClusterFormat.V1,
    ) -> codec.Response:
        self.send(request, deadline)
        return self.receive(deadline, cluster_format)

    def _read(self, size: int, deadline: float) -> bytes:
        buffer = bytearray(size)
        view = memoryview(buffer)
        received = 0
        while received < size:
            budget = remaining(deadline)
            if budget <= 0:
                self.close()
                raise Gone(f"no answer from {self.address} in time", sent=True)
            try:
                self._socket.settimeout(budget)
                count = self._socket.recv_into(view[received:])
            except OSError as error:
                self.close()
                raise Gone(describe(error), sent=True) from None
            if count == 0:
                self.close()
                raise Gone(f"{self.address} closed the connection", sent=True)
            received += count
        return bytes(buffer)

    def alive(self) -> bool:
        """False when the member closed the connection while it was idle (a crashed
        member's kernel does): a request sent now would never reach it. A member never
        speaks unasked, so anything readable on an idle link means it is finished."""
        if self.closed:
            return False
        try:
            readable, _, _ = select.select([self._socket], [], [], 0)
            if not readable:
                return True
            if isinstance(self._socket, ssl.SSLSocket):
                self._socket.setblocking(False)
                try:
                    self._socket.recv(1)  # TLS records that carry no data are fine
                except ssl.SSLWantReadError:
                    return True
                finally:
                    self._socket.setblocking(True)
            else:
                self._socket.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):
            pass
        self.close()
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._socket.close()
            except OSError:
                pass


def describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


# -- finding the leader ------------------------------------------------------------------


class Channel:
    """The link this client uses: to the leader, found and found again when it moves.

    It registers the session (CLIENT) and, for a SQL connection, opens the database on
    every new link, and remembers every member address it learns.
    """

    def __init__(
        self,
        seeds: list[str],
        *,
        tls: ssl.SSLContext | None,
        max_body: int,
        session_id: int,
        database: str | None,
    ) -> None:
        self.known = list(seeds)
        self.tls = tls
        self.max_body = max_body
        self.session_id = session_id
        self.database = database
        self.link: Link | None = None
        self.on_leader = False
        self.db_id = 0
        self.leader_address = ""

    def drop(self) -> None:
        if self.link is not None:
            self.link.close()
        self.link = None

    def ensure(self, deadline: float, *, follower_ok: bool = False) -> Link:
        """A live link to the leader, or, with `follower_ok`, to any member when no
        leader answers. OperationalError names each member's failure when time runs out."""
        link = self.link
        if link is not None and link.alive() and (self.on_leader or follower_ok):
            return link
        self.drop()
        link, on_leader = self._search(deadline, follower_ok)
        self.link, self.on_leader = link, on_leader
        return link

    def _search(self, deadline: float, follower_ok: bool) -> tuple[Link, bool]:
        failures: dict[str, str] = {}
        reachable = False  # some member answered: there is a cluster, without a leader now
        pause = BACKOFF_FIRST
        while True:
            fallback: Link | None = None
            order = ([self.leader_address] if self.leader_address else []) + self.known
            tried: set[str] = set()
            queue = deque(dict.fromkeys(a for a in order if a))
            while queue:
                address = queue.popleft()
                if address in tried:
                    continue
                tried.add(address)
                if remaining(deadline) <= 0:
                    break
                try:
                    link = Link.open(address, deadline, self.tls, self.max_body)
                except Gone as gone:
                    failures[address] = str(gone)
                    continue
                reachable = True
                try:
                    answer = link.call(codec.LeaderRequest(), deadline)
                    leader = leader_address_of(answer, address)
                    if leader == address:
                        self._register(link, deadline)
                        if fallback is not None:
                            fallback.close()
                        self.leader_address = address
                        return link, True
                    if leader and leader not in tried:
                        queue.appendleft(leader)
                        self._learn([leader])
                    failures[address] = (
                        f"not the leader (it names {leader})" if leader else "no leader known"
                    )
                    if follower_ok and fallback is None:
                        self._register(link, deadline, learn=False)
                        fallback = link
                    else:
                        link.close()
                except Gone as gone:
                    link.close()
                    failures[address] = str(gone)
                    if self.tls is None and "closed the connection" in str(gone):
                        # A member using TLS hangs up on a plain handshake.
                        failures[address] += " (does the cluster use TLS?)"
                except Refused as refused:
                    link.close()
                    if refused.final:
                        if fallback is not None:
                            fallback.close()
                        raise refused.error from None
                    failures[address] = str(refused.error)
            if fallback is not None:
                return fallback, False
            if remaining(deadline) <= pause:
                details = "; ".join(f"{a}: {reason}" for a, reason in failures.items())
                if not failures:
                    raise NoLeader("no time left to find the leader", reachable=reachable)
                what = "no leader found in time" if reachable else "no member reachable"
                raise NoLeader(f"{what} ({details})", reachable=reachable)
            time.sleep(pause)
            pause = min(pause * 2, BACKOFF_MAX)

    def _register(self, link: Link, deadline: float, learn: bool = True) -> None:
        """CLIENT, then OPEN for a SQL connection; with `learn`, the members from CLUSTER
        (asked of a leader only: a member cut off from its quorum may not answer it)."""
        welcome = link.call(codec.ClientRequest(self.session_id), deadline)
        if isinstance(welcome, codec.FailureResponse):
            raise Refused(error_for(welcome), final=False)
        if not isinstance(welcome, codec.WelcomeResponse):
            raise Gone(f"{link.address} answered CLIENT with {type(welcome).__name__}", True)
        link.features = welcome.features
        if self.database is not None:
            opened = link.call(codec.OpenRequest(self.database), deadline)
            if isinstance(opened, codec.FailureResponse):
                error = error_for(opened)
                not_leader = opened.code in NOT_LEADER_CODES
                raise Refused(
                    OperationalError(f"cannot open database {self.database!r}: {error}", error.code)
                    if not not_leader
                    else error,
                    final=not not_leader,
                )
            if not isinstance(opened, codec.DbResponse):
                raise Gone(f"{link.address} answered OPEN with {type(opened).__name__}", True)
            self.db_id = opened.db_id
        if not learn:
            return
        members = link.call(codec.ClusterRequest(codec.ClusterFormat.V1), deadline)
        if isinstance(members, codec.ServersResponse):
            self._learn([server.address for server in members.servers])

    def _learn(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            try:
                split_address(address)
            except InterfaceError:
                continue  # a member with an address we cannot dial is no candidate
            if address not in self.known:
                self.known.append(address)


class NoLeader(OperationalError):
    """No leader could be found in time; `reachable` says whether any member answered
    (a cluster electing, or without quorum) or none did (all down, or a wrong address)."""

    def __init__(self, message: str, reachable: bool) -> None:
        super().__init__(message)
        self.reachable = reachable


class Refused(Exception):
    """A member refused to register us; `final` when no other member would do better."""

    def __init__(self, error: Error, final: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.final = final


def leader_address_of(answer: codec.Response, asked: str) -> str:
    if isinstance(answer, codec.ServerResponse):
        return answer.address
    if isinstance(answer, codec.FailureResponse):
        return ""
    raise Gone(f"{asked} answered LEADER with {type(answer).__name__}", sent=True)


# -- requests and their retries ------------------------------------------------------------


class Resend(Enum):
    ALWAYS = "always"  # a read: resending changes nothing
    SESSION = "session"  # a write: resend after a lost answer only with a session
    UNSENT = "unsent"  # a write whose answer a session does not keep (rows): resend only
    # what never reached the server
    NEVER = "never"  # inside a transaction: it lives on this link and dies with it


class Conversation:
    """Sends one request at a time over a channel, finding the leader again and resending
    when that is safe; the part shared by SQL connections and the admin client."""

    def __init__(self, channel: Channel, timeout: float) -> None:
        self.channel = channel
        self.timeout = timeout
        self._sequence = 0

    def next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def request(
        self,
        build: Callable[[codec.RequestTag], codec.Request],
        *,
        resend: Resend,
        consistency: codec.Consistency = codec.Consistency.STRONG,
        follower_ok: bool = False,
        cluster_format: int = codec.ClusterFormat.V1,
    ) -> codec.Response:
        deadline = time.monotonic() + self.timeout
        sequence: int | None = None
        maybe_applied = False  # an earlier attempt's answer was lost
        reasons: list[str] = []  # why the attempts failed, each once, first first
        while True:
            current = self.channel.link
            if resend is Resend.NEVER and (current is None or not current.alive()):
                raise LinkLost("the connection to the leader closed")
            try:
                link = self.channel.ensure(deadline, follower_ok=follower_ok)
            except NoLeader as error:
                if not reasons:
                    raise
                raise NoLeader(f"{'; '.join(reasons)}; then {error}", error.reachable) from None
            sessions = bool(link.features & codec.SERVER_FEATURE_SESSIONS)
            if maybe_applied and resend is Resend.SESSION and not sessions:
                raise unknown_outcome(link.address, "it does not deduplicate retried writes")
            if sequence is None and sessions:
                sequence = self.next_sequence()
            tag = codec.RequestTag(consistency, sequence if sessions else None)
            try:
                response = link.call(build(tag), deadline, cluster_format)
            except Gone as gone:
                self.channel.drop()
                if resend is Resend.NEVER:
                    raise LinkLost(str(gone)) from None
                if gone.sent and resend is Resend.UNSENT:
                    raise unknown_outcome(link.address, str(gone)) from None
                if gone.sent and resend is Resend.SESSION:
                    if not sessions:
                        raise unknown_outcome(link.address, str(gone)) from None
                    maybe_applied = True
                self._pause_or_fail(deadline, reasons, str(gone))
                continue
            if isinstance(response, codec.FailureResponse):
                if response.code in NOT_LEADER_CODES:
                    self.channel.drop()
                    self.channel.leader_address = ""
                    if resend is Resend.NEVER:
                        raise LinkLost(f"{link.address} is no longer the leader")
                    self._pause_or_fail(deadline, reasons, f"{link.address} is not the leader")
                    continue
                if response.code in LEADERSHIP_LOST_CODES:
                    self.channel.drop()
                    self.channel.leader_address = ""
                    if resend is Resend.NEVER:
                        raise LinkLost(f"{link.address} lost its leadership")
                    if resend is Resend.UNSENT:
                        raise unknown_outcome(link.address, "leadership was lost")
                    if resend is Resend.SESSION:
                        if not sessions:
                            raise unknown_outcome(link.address, "leadership was lost")
                        maybe_applied = True
                    self._pause_or_fail(deadline, reasons, f"{link.address} lost its leadership")
                    continue
            return response

    @staticmethod
    def _pause_or_fail(deadline: float, reasons: list[str], reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)
        if remaining(deadline) <= 0:
            raise OperationalError(f"no answer in time ({'; '.join(reasons[:4])})")
        time.sleep(min(BACKOFF_FIRST, max(remaining(deadline), 0)))


class LinkLost(Exception):
    """The link died inside a transaction: the transaction is gone with it."""


def unknown_outcome(address: str, reason: str) -> OperationalError:
    return OperationalError(
        f"the answer from {address} was lost ({reason}): the write may or may not have been applied"
    )


def members_of(answer: codec.Response) -> list[NodeInfo]:
    if not isinstance(answer, codec.ServersResponse):
        raise InterfaceError(f"CLUSTER was answered with {type(answer).__name__}")
    members = []
    for server in answer.servers:
        try:
            role = Role(server.role if server.role is not None else Role.VOTER)
        except ValueError:
            raise InterfaceError(
                f"member {server.node_id} has unknown role {server.role}"
            ) from None
        members.append(NodeInfo(server.node_id, server.address, role))
    return members
