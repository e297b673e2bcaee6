"""The gateway's binance-spot dialect against the Binance-strict simulator (not a fake peer):
Ed25519 Logon verified against the registered key, XLQ, reconcile through the simulator's
signed REST; the maintenance News countdown (the admin fault) moves the flow to a second
session before the first is closed, no order lost; a gateway restarted with a live order
finds it through REST and books its later fill once."""

from __future__ import annotations

import time

import pytest

from pipeline.binance.keys import load_signer, write_key_pair
from pipeline.binance.rest import Credentials, Ed25519Signer, RestSettings, SignedRest
from pipeline.fix.binance_spot import BinanceSpot
from pipeline.fix.session import SessionConfig
from pipeline.orders import oms, risk
from pipeline.orders.gateway import GatewayAgent, GatewayConfig
from pipeline.orders.segments import EXECS_CONSUMER, create_order_path
from pipeline.orders.testing import push_intent, read_execs
from pipeline.venue.simulator import Account
from pipeline.venue.testing import TEST_API_KEY, VenueThread, binance_test_config
from shm_layouts.records import OrdStatus

pytestmark = pytest.mark.timeout(400)  # generous only for a cold numba cache

LIMITS = risk.RiskLimits(max_qty="0.01", max_notional="1000", max_position="0.02",
                         price_band_bps=100, max_orders_per_s=20, max_cancels_per_s=20,
                         max_open_orders=10, stale_md_ms=60_000)
MID = 6_000_000  # 60000.00


class Rig:
    """One simulator (binance dialect) and gateways against it, on the same order path."""

    def __init__(self, instance, tmp_path):
        private, public = write_key_pair(tmp_path / "keys")
        self.signer = load_signer(private)
        acct = Account("alice", 1, None, TEST_API_KEY, self.signer.key.public_key())
        cfg = binance_test_config(tmp_path, [acct], binance={"news_interval_s": 0.5})
        self.venue = VenueThread(cfg, account=1)
        self.table = cfg.symbols
        self.tmp = tmp_path
        self.orders, self.execs, self.state = create_order_path(instance, 1024)
        self.exec_slot = self.execs.join(EXECS_CONSUMER)
        self.instance = instance
        self.seen: list = []
        self.gw = self.gateway()

    def gateway(self) -> GatewayAgent:
        dialect = BinanceSpot(api_key=TEST_API_KEY, signer=self.signer, comp_id_prefix="hf")
        cfg = GatewayConfig("127.0.0.1", self.venue.port,
                            SessionConfig("hf", "SPOT", str(self.tmp / "fix"), heartbeat_s=30),
                            str(self.tmp / "oms.journal"), backoff_min_s=0.05,
                            backoff_max_s=0.2, dialect=dialect)
        rest = SignedRest(RestSettings(self.venue.sim.endpoints()["rest"]),
                          Credentials(TEST_API_KEY, Ed25519Signer(self.signer)))
        return GatewayAgent(self.instance, cfg, self.table, LIMITS, rest=rest)

    def until(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            self.gw.marks[0] = (MID - 1, MID + 1, time.monotonic_ns(), 0)
            self.gw.poll_once()
            self.gw.housekeeping(time.monotonic_ns())
            self.seen.extend(read_execs(self.execs, self.exec_slot))
            time.sleep(0.0005)

    def new(self, price=MID - 100, qty=100):
        cl = self.state.next_cl_ord_id()
        push_intent(self.orders, action=1, cl_ord_id=cl, symbol_id=0, side=0, price=price,
                    qty=qty, tif=1, ord_type=1)
        return cl

    def order(self, cl):
        return self.gw.oms.orders[oms.find(self.gw.oms.orders, cl)]

    def sessions(self) -> list[str]:
        return self.venue.call(lambda: sorted(self.venue.sim.fix.sessions))

    def stats(self) -> dict:
        return self.venue.call(lambda: dict(self.venue.sim.stats))

    def close(self):
        self.gw.wire.close(time.monotonic_ns())
        self.venue.stop()


@pytest.fixture
def rig(instance, tmp_path):
    r = Rig(instance, tmp_path)
    yield r
    r.close()


def test_maintenance_moves_the_flow_to_a_new_session_no_order_lost(rig):
    rig.until(lambda: rig.state.ready(), timeout=300)  # first run: numba compiles
    (first,) = rig.sessions()
    assert len(first) == 8 and first.startswith("hf")
    cl = rig.new()
    rig.until(lambda: rig.order(cl)["status"] == OrdStatus.NEW)
    rig.venue.faults(fix_maintenance_s=2)  # News every 0.5 s, then the venue logs it out
    rig.until(lambda: len(rig.sessions()) == 2, timeout=10)  # a second session, first live
    second = next(s for s in rig.sessions() if s != first)
    rig.until(lambda: rig.sessions() == [second], timeout=10)  # the old one goes
    st = rig.stats()
    assert st["binance_news_sent"] >= 1 and st["fix_logons"] == 2
    assert not st.get("binance_logons_refused") and not st.get("binance_bad_seq")
    # the order survived and its fill reaches us on the new session, booked once
    rig.venue.fill(str(cl), "0.001", "59999.00")
    rig.until(lambda: rig.order(cl)["status"] == OrdStatus.FILLED)
    assert rig.gw.oms.positions[0]["position"] == 100
    assert rig.gw.oms.positions[0]["fills"] == 1
    cl2 = rig.new(price=MID - 200)  # and the flow goes on on the new session
    rig.until(lambda: rig.order(cl2)["status"] == OrdStatus.NEW)


def test_a_restarted_gateway_reconciles_its_live_order_through_rest(rig):
    rig.until(lambda: rig.state.ready(), timeout=300)
    cl = rig.new()
    rig.until(lambda: rig.order(cl)["status"] == OrdStatus.NEW)
    rig.gw.wire.close(time.monotonic_ns())  # the gateway goes away (no cancel)
    rig.venue.fill(str(cl), "0.0004", "59999.00")  # filled partly while it was away
    rig.gw = rig.gateway()  # restarted: same OMS state, a fresh CompID, REST reconcile
    rig.until(lambda: rig.state.ready(), timeout=60)
    o = rig.order(cl)
    assert o["status"] == OrdStatus.PARTIALLY_FILLED and o["cum_qty"] == 40
    assert rig.gw.oms.positions[0]["position"] == 40
    rig.venue.fill(str(cl), "0.0006", "59999.00")
    rig.until(lambda: rig.order(cl)["status"] == OrdStatus.FILLED)
    assert rig.gw.oms.positions[0]["position"] == 100
    assert rig.stats()["rest_signed_ok"] >= 2
