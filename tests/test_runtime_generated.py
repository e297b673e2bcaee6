"""Template modules specialised by name (pipeline.runtime.generated)."""

from __future__ import annotations

import pytest
from numba import njit

from pipeline.runtime import fused_loop, generated
from pipeline.runtime.agent import no_duty, work_done


def test_a_copy_imports_the_bound_callees_in_place_of_the_placeholders():
    copy = generated.specialize(fused_loop, {"d0": work_done, "d1": no_duty, "d2": no_duty,
                                             "d3": no_duty})
    assert copy.d0 is work_done and copy.d1 is no_duty
    assert copy.run is not fused_loop.run
    again = generated.specialize(fused_loop, {"d0": work_done, "d1": no_duty,
                                              "d2": no_duty, "d3": no_duty})
    assert again is copy  # same text, same module


def test_the_bound_names_must_be_exactly_the_templates():
    with pytest.raises(ValueError, match=r"binds \['d0', 'd1', 'd2', 'd3'\]"):
        generated.specialize(fused_loop, {"d0": no_duty, "d1": no_duty, "d2": no_duty})


def test_a_closure_cannot_be_bound():
    @njit(cache=False)
    def inner():
        return 0

    with pytest.raises(TypeError, match="closure cannot be cached"):
        generated.specialize(fused_loop, {"d0": inner, "d1": no_duty, "d2": no_duty,
                                          "d3": no_duty})
