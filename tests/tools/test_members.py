"""Member lists as operators type them: every mistake named in one line."""

from __future__ import annotations

import uuid

import pytest

from nodehost.tools import ToolError, parse_members
from nodehost.tools.members import format_members


def test_a_list_of_addresses_and_ids() -> None:
    host_id = str(uuid.uuid4())
    members = parse_members(f" 1=10.0.0.1:63001, 2=[::1]:63002,3={host_id.upper()} ")
    assert members == {1: "10.0.0.1:63001", 2: "[::1]:63002", 3: host_id}
    assert format_members(members) == f"1=10.0.0.1:63001,2=[::1]:63002,3={host_id}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the list is empty"),
        ("1=a:1,2", "entry '2' is not ID=TARGET"),
        ("1=a:1,=b:2", "entry '=b:2' is not ID=TARGET"),
        ("x=a:1", "replica 'x' is not an id"),
        ("0=a:1", "replica '0' is not an id"),
        (f"{2**64}=a:1", "is not an id"),
        ("1=nowhere", "'nowhere' is not host:port (nor a NodeHost id)"),
        ("1=a:99999", "port 99999 is out of range"),
        ("1=a:1,1=b:2", "replica 1 is given twice"),
        ("1=a:1,2=a:1", "replicas 1 and 2 share the target a:1"),
    ],
)
def test_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(ToolError) as caught:
        parse_members(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
