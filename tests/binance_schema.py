"""Binance's order-entry schema (``fix/spot-fix-oe.xml``) as tag sets, parsed from the XML:
per message type the tags it may carry (components and groups expanded) and the ones it
must; the header's. What ``tests/test_binance_spot.py`` checks outbound messages against."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SCHEMA = Path("/work/shared/data/binance/api/fix/spot-fix-oe.xml")
FRAMING = {8, 9, 10}  # BeginString, BodyLength, CheckSum


@dataclass(frozen=True)
class MessageSpec:
    name: str
    allowed: frozenset[int]
    required: frozenset[int]


@dataclass(frozen=True)
class Schema:
    header: frozenset[int]
    header_required: frozenset[int]
    messages: dict[str, MessageSpec]  # by MsgType


@cache
def load(path: Path = SCHEMA) -> Schema:
    root = ET.parse(path).getroot()
    numbers = {f.get("name"): int(f.get("number")) for f in root.find("fields")}
    components = {c.get("name"): c for c in root.find("components")}

    def walk(node, required_here: bool) -> tuple[set[int], set[int]]:
        allowed, required = set(), set()
        for child in node:
            req = required_here and child.get("required") == "Y"
            if child.tag == "field":
                allowed.add(numbers[child.get("name")])
                if req:
                    required.add(numbers[child.get("name")])
            elif child.tag == "component":
                a, r = walk(components[child.get("name")], req)
                allowed |= a
                required |= r
            elif child.tag == "group":
                allowed.add(numbers[child.get("name")])
                if req:
                    required.add(numbers[child.get("name")])
                a, _ = walk(child, False)  # a group's members: required only per entry
                allowed |= a
        return allowed, required

    header, header_req = walk(root.find("header"), True)
    messages = {}
    for m in root.find("messages"):
        allowed, required = walk(m, True)
        messages[m.get("msgtype")] = MessageSpec(m.get("name"), frozenset(allowed),
                                                 frozenset(required))
    return Schema(frozenset(header), frozenset(header_req), messages)


def violations(raw: bytes, schema: Schema | None = None) -> list[str]:
    """What is wrong with message ``raw`` against the schema ([] = it conforms): a tag
    the message type does not define, a required one missing, a tag twice, framing."""
    schema = schema or load()
    pairs = [p.split(b"=", 1) for p in raw.rstrip(b"\x01").split(b"\x01")]
    tags = [int(t) for t, _ in pairs]
    problems = []
    if tags[:3] != [8, 9, 35]:
        problems.append(f"starts {tags[:3]}, not 8, 9, 35")
    if tags[-1] != 10:
        problems.append("does not end with CheckSum")
    msg_type = dict((int(t), v) for t, v in pairs)[35].decode()
    spec = schema.messages.get(msg_type)
    if spec is None:
        return problems + [f"MsgType {msg_type} is not in the schema"]
    allowed = spec.allowed | schema.header | FRAMING
    for t in tags:
        if t not in allowed:
            problems.append(f"{spec.name}: tag {t} not defined for it")
    for t in (spec.required | schema.header_required) - set(tags):
        problems.append(f"{spec.name}: required tag {t} missing")
    dup = {t for t in tags if tags.count(t) > 1}
    if dup:
        problems.append(f"{spec.name}: tags {sorted(dup)} appear more than once")
    return problems
