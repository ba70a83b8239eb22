"""A real DNS server on loopback for tests: UDP, answers built with dnspython.

It serves only the names a test gives it (A, AAAA and SRV records, SRV with the
targets' addresses as glue), NXDOMAIN for anything else, and counts the queries, so a
test can tell it was asked. No system file is touched: the code under test is pointed
at it through its config ("nameservers": ["127.0.0.1:<port>"]).

Rules: it runs on a thread of the test process, bound to a port picked free; `close`
stops the thread (bounded) and closes the socket.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text if text.endswith(".") else text + ".")


class LoopbackDns:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        self._addresses: dict[dns.name.Name, list[str]] = {}
        self._srv: dict[dns.name.Name, list[tuple[str, int]]] = {}
        self.queries: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loopback-dns", daemon=True)
        self._thread.start()

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    def set_addresses(self, name: str, addresses: list[str]) -> None:
        with self._lock:
            self._addresses[_name(name)] = list(addresses)

    def set_srv(self, name: str, targets: list[tuple[str, int]]) -> None:
        with self._lock:
            self._srv[_name(name)] = list(targets)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            self.sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(question.name.to_text(), rdtype)] += 1
        with self._lock:
            addresses = self._addresses.get(question.name)
            targets = self._srv.get(question.name)
            if addresses is None and targets is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            if question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                wanted = [
                    a
                    for a in addresses or []
                    if (":" in a) == (question.rdtype == dns.rdatatype.AAAA)
                ]
                if wanted:
                    response.answer.append(
                        dns.rrset.from_text_list(question.name, 5, "IN", rdtype, wanted)
                    )
            elif question.rdtype == dns.rdatatype.SRV and targets:
                response.answer.append(
                    dns.rrset.from_text_list(
                        question.name,
                        5,
                        "IN",
                        "SRV",
                        [f"0 10 {port} {_name(target)}" for target, port in targets],
                    )
                )
                for target, _ in targets:
                    glue = [a for a in self._addresses.get(_name(target), []) if ":" not in a]
                    if glue:
                        response.additional.append(
                            dns.rrset.from_text_list(_name(target), 5, "IN", "A", glue)
                        )
        return response
