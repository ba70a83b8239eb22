"""What a membership names a replica's host by: "host:port", or its NodeHost id when
hosts are addressed by id (NodeHostConfig.address_by_node_host_id).

Rules: one kind per NodeHost, fixed for its data (nodehost.json records it); a target
of the other kind is an InvalidConfig naming the field, before anything is proposed.
"""

from __future__ import annotations

from nodehost.config import parse_address
from nodehost.errors import InvalidConfig
from transport.config import is_node_host_id


def check_target(target: str, field_name: str, by_node_host_id: bool) -> None:
    if not isinstance(target, str):
        raise InvalidConfig(f"{field_name}: {target!r} is not a string")
    if by_node_host_id:
        if not is_node_host_id(target):
            raise InvalidConfig(
                f"{field_name}: {target!r} is not a NodeHost id; hosts are addressed by id "
                "(address_by_node_host_id), so members name NodeHost ids"
            )
        return
    parse_address(target, field_name)
