"""The fused loop's template (``pipeline.runtime.fused``): ``d0``..``d3`` are the duty
cycles, bound by ``generated.specialize``; here they are placeholders that do nothing."""

from numba import njit

from pipeline.runtime.agent import keep_polling, work_done
from pipeline.runtime.agent import no_duty as d0  # bound
from pipeline.runtime.agent import no_duty as d1  # bound
from pipeline.runtime.agent import no_duty as d2  # bound
from pipeline.runtime.agent import no_duty as d3  # bound


@njit(cache=True, _nrt=False)
def run(a0, a1, a2, a3, rounds, idle_state, deadline_ns):
    """One duty cycle of each of ``d0``..``d3`` per round, in data-flow order, idle once a
    round; returns the work done at the deadline or after a round in which a duty cycle
    asked Python to act (a negative result)."""
    total = 0
    iteration = 0
    while True:
        r0 = d0(*a0)
        r1 = d1(*a1)
        r2 = d2(*a2)
        r3 = d3(*a3)
        work = work_done(r0) + work_done(r1) + work_done(r2) + work_done(r3)
        total += work
        iteration += 1
        rounds[0] += 1
        if min(r0, r1, r2, r3) < 0 or not keep_polling(idle_state, work, iteration,
                                                      deadline_ns):
            return total
