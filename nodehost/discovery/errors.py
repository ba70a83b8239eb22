"""What can go wrong while finding a cluster, as exceptions a caller can tell apart.

Rules: every message is one line that names what failed and what to change; an error
that may clear by itself (a store that is down, a peer that does not answer yet) is
`StoreUnavailable` or `PeerUnavailable` and is retried; the others are final.
"""

from __future__ import annotations


class DiscoveryError(Exception):
    """Base of every error raised by `nodehost.discovery`."""


class DiscoveryConfigError(DiscoveryError, ValueError):
    """The mode, the config or the key is malformed; the message says which field."""


class StoreUnavailable(DiscoveryError):
    """The discovery store (etcd, a DNS server) could not be asked. Retrying is safe."""


class StoreAnswerInvalid(DiscoveryError):
    """The store answered something that is not what this library writes there."""


class PeerUnavailable(DiscoveryError):
    """A peer did not answer, or answered garbage; it may be starting. Retrying is safe."""


class JoinRefused(DiscoveryError):
    """A member refused to add this node for a reason retrying cannot fix."""


class ClusterConflict(DiscoveryError):
    """What discovery found contradicts this node's identity (e.g. two nodes share an id)."""


class GaveUp(DiscoveryError):
    """No cluster was found or joined within the configured patience."""
