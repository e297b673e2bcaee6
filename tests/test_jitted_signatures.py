"""No jitted function in ``pipeline/`` takes more than ``MAX_PARAMETERS`` parameters.

Arrays that travel together go in one named view (``typing.NamedTuple``: RingView, the
OMS, the FIX out path ...): ``duty(fd, intents, oms, risk, fix, execs, book, hists)``
reads, and two swapped int64 arrays stop type-checking silently (issue 12, item 1)."""

from __future__ import annotations

from jitscan import PIPELINE, assert_none, jitted_functions, parameters, where

MAX_PARAMETERS = 10


def too_wide(root=PIPELINE) -> list[str]:
    out = []
    for path, _tree, fn in jitted_functions(root):
        params = parameters(fn)
        if len(params) > MAX_PARAMETERS:
            out.append(f"{where(path, fn)}: {fn.name} takes {len(params)} parameters")
    return out


def test_no_jitted_function_takes_more_than_ten_parameters():
    assert_none(too_wide(), f"jitted functions over {MAX_PARAMETERS} parameters (bundle "
                "them in named views)")


def test_the_scan_sees_decorated_functions(tmp_path, monkeypatch):
    import jitscan
    (tmp_path / "m.py").write_text(
        "from numba import njit\nimport numba\n"
        "@njit(cache=True)\ndef wide(a, b, c, d, e, f, g, h, i, j, k):\n    return a\n"
        "@numba.njit\ndef wide2(a, b, c, d, e, f, g, h, i, j, *k):\n    return a\n"
        "def plain(a, b, c, d, e, f, g, h, i, j, k):\n    return a\n"
        "@njit\ndef narrow(a, b, c, d, e, f, g, h, i, j):\n    return a\n")
    monkeypatch.setattr(jitscan, "ROOT", tmp_path)
    bad = too_wide(tmp_path)
    assert [b.split(": ")[1].split()[0] for b in bad] == ["wide", "wide2"]
