"""An independent writer and reader of Binance SBE market-data frames, driven only by the
schema XML (xml.etree + struct), and the records the decoder must give for a frame (or the
reason it must reject it). Slow and obviously right; shares no code with the decoder."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pipeline.instruments import SymbolTable
from shm_layouts.records import MdKind, Side

SCHEMA_PATH = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance"
               / "api" / "sbe" / "stream_1_0.xml")
SBE = "{http://fixprotocol.io/2016/sbe}"
MBX = "{https://developers.binance.com/docs/binance-spot-api-docs}"
PRIM = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
        "int64": "q", "uint64": "Q"}
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Field:
    name: str
    fmt: str  # struct code of its primitive type
    exponent: str | None  # the mbx:exponent field of a mantissa


@dataclass(frozen=True)
class Group:
    name: str
    dimension: str  # composite name: groupSizeEncoding or groupSize16Encoding
    fields: list[Field]

    @property
    def entry_size(self) -> int:
        return struct.calcsize("<" + "".join(f.fmt for f in self.fields))


@dataclass(frozen=True)
class Message:
    id: int
    name: str
    fields: list[Field]
    groups: list[Group]
    data: list[str]  # varString8 fields in order

    @property
    def block_length(self) -> int:
        return struct.calcsize("<" + "".join(f.fmt for f in self.fields))


@dataclass(frozen=True)
class Schema:
    id: int
    version: int
    composites: dict[str, list[tuple[str, str]]]
    messages: dict[int, Message]

    def by_name(self, name: str) -> Message:
        return next(m for m in self.messages.values() if m.name == name)

    def dim_format(self, dimension: str) -> str:
        return "<" + "".join(fmt for _, fmt in self.composites[dimension])


def load(path: Path = SCHEMA_PATH) -> Schema:
    root = ET.parse(path).getroot()
    simple: dict[str, str] = {}
    composites: dict[str, list[tuple[str, str]]] = {}
    for t in root.find("types"):
        if t.tag == "type":
            simple[t.get("name")] = PRIM[t.get("primitiveType")]
        elif t.tag == "enum":
            simple[t.get("name")] = PRIM[t.get("encodingType")]
        elif t.tag == "composite":
            composites[t.get("name")] = [(c.get("name"), PRIM[c.get("primitiveType")])
                                         for c in t if c.get("length") != "0"]

    def fields(node) -> list[Field]:
        return [Field(f.get("name"), simple[f.get("type")], f.get(MBX + "exponent"))
                for f in node.findall("field") if f.get("presence") != "constant"]

    messages = {}
    for m in root.findall(SBE + "message"):
        groups = [Group(g.get("name"), g.get("dimensionType", "groupSizeEncoding"), fields(g))
                  for g in m.findall("group")]
        messages[int(m.get("id"))] = Message(int(m.get("id")), m.get("name"), fields(m), groups,
                                             [d.get("name") for d in m.findall("data")])
    return Schema(int(root.get("id")), int(root.get("version")), composites, messages)


def _pack(fields: list[Field], values: dict) -> bytes:
    return struct.pack("<" + "".join(f.fmt for f in fields), *(values[f.name] for f in fields))


def write(schema: Schema, name: str, root: dict, groups: dict[str, list[dict]], symbol: bytes,
          *, schema_id: int | None = None, version: int | None = None, extra_block: int = 0,
          extra_entry: int = 0, trailer: bytes = b"") -> bytes:
    """One message, laid out as the XML says (plus optional newer-version padding)."""
    msg = schema.by_name(name)
    hdr = {"blockLength": msg.block_length + extra_block, "templateId": msg.id,
           "schemaId": schema.id if schema_id is None else schema_id,
           "version": schema.version if version is None else version}
    out = struct.pack(schema.dim_format("messageHeader"),
                      *(hdr[n] for n, _ in schema.composites["messageHeader"]))
    out += _pack(msg.fields, root) + bytes(extra_block)
    for g in msg.groups:
        entries = groups.get(g.name, [])
        dim = {"blockLength": g.entry_size + extra_entry, "numInGroup": len(entries)}
        out += struct.pack(schema.dim_format(g.dimension),
                           *(dim[n] for n, _ in schema.composites[g.dimension]))
        out += b"".join(_pack(g.fields, e) + bytes(extra_entry) for e in entries)
    return out + bytes([len(symbol)]) + symbol + trailer


class Bad(Exception):
    """The frame must be rejected; ``args[0]`` is the Reject name in lower case."""


def read(schema: Schema, frame: bytes) -> dict:
    """Header, root fields, group entries and symbol of a frame, checked in the order the
    decoder checks them (raising ``Bad(reason)``)."""
    hfmt = schema.dim_format("messageHeader")
    if len(frame) < struct.calcsize(hfmt):
        raise Bad("truncated")
    hdr = dict(zip([n for n, _ in schema.composites["messageHeader"]],
                   struct.unpack_from(hfmt, frame), strict=True))
    if hdr["schemaId"] != schema.id:
        raise Bad("bad_schema")
    if hdr["version"] < schema.version:
        raise Bad("old_version")
    msg = schema.messages.get(hdr["templateId"])
    if msg is None:
        raise Bad("unknown_template")
    if hdr["blockLength"] < msg.block_length:
        raise Bad("short_block")
    pos = struct.calcsize(hfmt)
    if pos + hdr["blockLength"] > len(frame):
        raise Bad("truncated")
    values = dict(zip([f.name for f in msg.fields],
                      struct.unpack_from("<" + "".join(f.fmt for f in msg.fields), frame, pos),
                      strict=True))
    pos += hdr["blockLength"]
    groups: dict[str, list[dict]] = {}
    spans: list[tuple[int, int]] = []  # where each group's entries lie
    for g in msg.groups:
        dfmt = schema.dim_format(g.dimension)
        if pos + struct.calcsize(dfmt) > len(frame):
            raise Bad("truncated")
        bl, n = struct.unpack_from(dfmt, frame, pos)
        pos += struct.calcsize(dfmt)
        if bl < g.entry_size:
            raise Bad("short_entry")
        if pos + n * bl > len(frame):
            raise Bad("group_overrun")
        efmt = "<" + "".join(f.fmt for f in g.fields)
        groups[g.name] = [dict(zip([f.name for f in g.fields],
                                   struct.unpack_from(efmt, frame, pos + i * bl), strict=True))
                          for i in range(n)]
        spans.append((pos, pos + n * bl))
        pos += n * bl
    if pos + 1 > len(frame) or pos + 1 + frame[pos] > len(frame):
        raise Bad("truncated")
    symbol = frame[pos + 1: pos + 1 + frame[pos]]
    if hdr["version"] == schema.version and pos + 1 + len(symbol) != len(frame):
        raise Bad("trailing")
    return {"header": hdr, "message": msg.name, "fields": values, "groups": groups,
            "symbol": symbol, "spans": spans}


def _units(mant: int, exp: int, decimals: int, units: int, what: str) -> int:
    if mant < 0:
        raise Bad("off_grid")
    value = Decimal(mant).scaleb(exp)
    if value.scaleb(decimals) > INT64_MAX:  # the decoder's limit (and the JSON path's): the
        raise Bad("off_grid")  # value in units of 10**-decimals must fit an int64
    steps = value.scaleb(decimals) / units  # exact: Decimal's context holds 28 digits
    if steps != steps.to_integral_value():
        raise Bad("off_grid")
    return int(steps)


def _wrap(v: int) -> int:
    return (v + 2**63) % 2**64 - 2**63


def expected(schema: Schema, frame: bytes, symbols: SymbolTable, recv_ns: int
             ) -> list[tuple] | str:
    """The records ``(kind, side, price, qty, first, last, prev, symbol_id, exch_ns,
    t_origin_ns)`` a frame must give, or the name of the reason it must be rejected."""
    try:
        m = read(schema, frame)
        ins = {i.symbol.encode(): i for i in symbols}.get(m["symbol"])
        if ins is None:
            raise Bad("unknown_symbol")
        return _records(m, ins, recv_ns)
    except Bad as bad:
        return bad.args[0]


def _records(m: dict, ins, recv_ns: int) -> list[tuple]:
    f = m["fields"]
    sid, exch = ins.symbol_id, _wrap(f["eventTime"] * 1000)

    def px(mant):
        return _units(mant, f["priceExponent"], ins.price_decimals, ins.tick_units, "price")

    def qty(mant):
        return _units(mant, f["qtyExponent"], ins.qty_decimals, ins.lot_units, "qty")

    def rec(kind, side, p, q, first, last):
        return (int(kind), int(side), p, q, first, last, -1, sid, exch, recv_ns)

    if m["message"] == "TradesStreamEvent":
        out = []
        for t in m["groups"]["trades"]:
            p, q = px(t["price"]), qty(t["qty"])
            if t["isBuyerMaker"] > 1:
                raise Bad("bad_value")
            side = Side.ASK if t["isBuyerMaker"] else Side.BID
            out.append(rec(MdKind.TRADE, side, p, q, t["id"], t["id"]))
        return out
    if m["message"] == "BestBidAskStreamEvent":
        u = f["bookUpdateId"]
        levels = [px(f["bidPrice"]), qty(f["bidQty"]), px(f["askPrice"]), qty(f["askQty"])]
        return [rec(MdKind.BBO, Side.BID, levels[0], levels[1], u, u),
                rec(MdKind.BBO, Side.ASK, levels[2], levels[3], u, u)]
    diff = m["message"] == "DepthDiffStreamEvent"
    first = f["firstBookUpdateId"] if diff else f["bookUpdateId"]
    last = f["lastBookUpdateId"] if diff else first
    kind = MdKind.DIFF_LEVEL if diff else MdKind.SNAPSHOT_LEVEL
    out = [] if diff else [rec(MdKind.SNAPSHOT_BEGIN, 0, 0, 0, first, last)]
    for side, name in ((Side.BID, "bids"), (Side.ASK, "asks")):
        for lv in m["groups"][name]:
            out.append(rec(kind, side, px(lv["price"]), qty(lv["qty"]), first, last))
    if diff:
        out.append(rec(MdKind.DIFF_END, 0, 0, 0, first, last))
    return out


def as_tuples(recs) -> list[tuple]:
    """Decoder records in ``expected``'s form; also checks the fields it leaves out."""
    assert (recs["flags"] == 0).all()
    return [(int(r["kind"]), int(r["side"]), int(r["price"]), int(r["qty"]), int(r["first_id"]),
             int(r["last_id"]), int(r["prev_id"]), int(r["symbol_id"]), int(r["exch_time_ns"]),
             int(r["t_origin_ns"])) for r in recs]
