"""Synthetic background flow: anonymous participants around a random-walk fair price.

Each event is one of: a limit add near the touch (distance from the fair price drawn from
a geometric law, so depth decays away from the touch), a cancel of a random resting flow
order (the cancel probability grows with the number resting, which keeps the book near
``target_orders``), or a market order (Bernoulli-thinned from the event stream, so Poisson
in time). Now and then a burst of aggressive events arrives at once.

The event sequence is a pure function of the seed: pacing (how many events per wall-clock
tick) only changes when they happen, not what they are.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pipeline.venue.matching import BUY, HOUSE, SELL, Book
from shm_layouts.records import OrderType, TimeInForce


@dataclass
class FlowParams:
    start_ticks: int = 100_000
    mean_qty_lots: int = 100
    mean_distance: float = 100.0  # ticks from the fair price, geometric
    max_distance: int = 1500
    target_orders: int = 4000  # both sides
    p_market: float = 0.03
    p_move: float = 0.05  # fair price moves one tick
    p_burst: float = 0.0005
    burst_size: int = 40


class Flow:
    def __init__(self, book: Book, params: FlowParams, seed: int):
        self.book = book
        self.p = params
        self.rng = random.Random(seed)
        self.fair = params.start_ticks
        self.resting: list[int] = []  # flow order ids (some may be filled already)
        self.events = 0
        self._log_q = math.log(1.0 - 1.0 / max(params.mean_distance, 1.0001))
        self._log_s = math.log(1.0 - 1.0 / max(params.mean_qty_lots, 1.0001))

    def _geometric(self, log_q: float) -> int:
        return 1 + int(math.log(1.0 - self.rng.random()) / log_q)

    def seed_book(self) -> None:
        """Fill the book to its target depth without waiting for the flow to build it."""
        while len(self.resting) < self.p.target_orders:
            self._add()

    def step(self, n: int) -> None:
        for _ in range(n):
            self._event()

    def _event(self) -> None:
        rng = self.rng
        self.events += 1
        if rng.random() < self.p.p_move:
            self.fair += 1 if rng.random() < 0.5 else -1
            self.fair = max(self.fair, self.p.max_distance + 2)
        if rng.random() < self.p.p_burst:
            side = BUY if rng.random() < 0.5 else SELL
            for _ in range(self.p.burst_size):
                if rng.random() < 0.5:
                    self._market(side)
                else:
                    self._add()
            return
        r = rng.random()
        if r < self.p.p_market:
            self._market(BUY if rng.random() < 0.5 else SELL)
        else:
            n = len(self.resting)
            if rng.random() < n / (n + self.p.target_orders):
                self._cancel()
            else:
                self._add()

    def _add(self) -> None:
        side = BUY if self.rng.random() < 0.5 else SELL
        dist = min(self._geometric(self._log_q), self.p.max_distance)
        price = self.fair - dist if side == BUY else self.fair + dist
        order = self.book.new_order(HOUSE, "", side, self._geometric(self._log_s), price)
        if order is not None and order.oid in self.book.orders:
            self.resting.append(order.oid)

    def _cancel(self) -> None:
        resting = self.resting
        while resting:
            i = self.rng.randrange(len(resting))
            oid = resting[i]
            resting[i] = resting[-1]
            resting.pop()
            if self.book.cancel_oid(oid):
                return

    def _market(self, side: int) -> None:
        qty = self._geometric(self._log_s) * 3
        self.book.new_order(HOUSE, "", side, qty, 0, TimeInForce.IOC, OrderType.MARKET)
