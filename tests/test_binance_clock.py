"""Clock offset to the venue: best of N by round trip, and the refusal to log on with a
skew the venue's recvWindow would reject (the message names the offset and the limit)."""

import pytest

from pipeline.binance import clock
from pipeline.binance.clock import ClockOffset, ClockSkewError


class _Server:
    """A server clock that answers from a script: (our-clock delay before it reads its
    clock, its reading relative to ours)."""

    def __init__(self, readings):
        self.readings = list(readings)

    def time_ms(self):
        import time
        skew = self.readings.pop(0)
        return time.time_ns() // 1_000_000 + skew


def test_best_of_n_takes_the_shortest_round_trip():
    server = _Server([2500, 2500, 2500])
    off = clock.measure_offset(server, 3)
    assert abs(off.offset_ms - 2500) <= off.rtt_ms / 2 + 1
    with pytest.raises(ValueError, match="samples"):
        clock.measure_offset(server, 0)


def test_best_sample_wins_over_a_slow_one():
    import time

    class Slow:
        calls = 0

        def time_ms(self):
            Slow.calls += 1
            if Slow.calls == 1:  # a queued first answer: long round trip, bogus offset
                t = time.time_ns() // 1_000_000 + 900
                time.sleep(0.5)
                return t
            return time.time_ns() // 1_000_000 + 100
    off = clock.measure_offset(Slow(), 4)
    assert abs(off.offset_ms - 100) <= off.rtt_ms / 2 + 1  # not the first sample's 800


def test_check_within_and_outside_the_window():
    clock.check(ClockOffset(3900.0, 10.0), 5000, 1000)  # 3905 behind <= 4000
    clock.check(ClockOffset(-900.0, 10.0), 5000, 1000)  # 905 ahead < 1000
    with pytest.raises(ClockSkewError) as err:
        clock.check(ClockOffset(3999.0, 10.0), 5000, 1000)  # 4004 with the uncertainty
    text = str(err.value)
    assert "3999.0 ms behind" in text and "recvWindow 5000 ms - margin 1000 ms = 4000 ms" in text
    with pytest.raises(ClockSkewError, match=r"1200\.0 ms ahead.*1000 ms"):
        clock.check(ClockOffset(-1200.0, 2.0), 5000, 1000)
    with pytest.raises(ValueError, match="margin"):
        clock.check(ClockOffset(0.0, 1.0), 5000, 5000)


def test_synchronise_sets_the_offset_only_when_it_passes():
    class Rest(_Server):
        offset_ms = 0
    ok = Rest([300] * 3)
    off = clock.synchronise(ok, 3, 5000, 1000)
    assert ok.offset_ms == off.offset_int_ms and abs(off.offset_ms - 300) <= off.rtt_ms / 2 + 1
    bad = Rest([-5000] * 3)
    with pytest.raises(ClockSkewError, match="ahead"):
        clock.synchronise(bad, 3, 5000, 1000)
    assert bad.offset_ms == 0
