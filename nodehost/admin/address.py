"""Where the admin service listens: a local unix socket, or host:port with mutual TLS.

Rules:
- "unix:PATH", or any text with a "/" in it, is a unix socket path; anything else
  must be "host:port" (IPv6 as "[::1]:port").
- The same parser serves the NodeHost (NodeHostConfig.admin_address) and the
  `nodehost` command (--admin), so both read an address the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nodehost.config import parse_address
from nodehost.errors import InvalidConfig

UNIX_PREFIX = "unix:"


@dataclass(frozen=True, slots=True)
class AdminAddress:
    unix_path: str | None
    host: str
    port: int

    @property
    def is_unix(self) -> bool:
        return self.unix_path is not None

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"{UNIX_PREFIX}{self.unix_path}"
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, field_name: str = "admin_address") -> AdminAddress:
        """Raise InvalidConfig naming `field_name` when `text` is neither form."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidConfig(f"{field_name}: an address is required")
        if text.startswith(UNIX_PREFIX) or "/" in text:
            path = text[len(UNIX_PREFIX) :] if text.startswith(UNIX_PREFIX) else text
            if not path:
                raise InvalidConfig(f"{field_name}: {text!r} names no socket path")
            if "\0" in path:
                raise InvalidConfig(f"{field_name}: the socket path holds a NUL byte")
            path = os.path.abspath(path)
            # sockaddr_un holds 108 bytes, the terminating NUL included.
            if len(os.fsencode(path)) > 107:
                raise InvalidConfig(
                    f"{field_name}: socket path {path!r} is longer than the 107 bytes a "
                    "unix socket address holds"
                )
            return cls(path, "", 0)
        host, port = parse_address(text, field_name)
        return cls(None, host.strip("[]"), port)
