"""``var/run``: what ``hft run`` keeps per instance on disk (its resolved config
``<instance>.toml``; ``<instance>/`` with the simulator's and the gateway's FIX stores and
journals), found and removed by ``hft cleanup`` once the instance is dead."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.config import ROOT

RUN_DIR = ROOT / "var" / "run"


def run_files(name: str) -> list[Path]:
    """Instance ``name``'s files under var/run that exist."""
    return [p for p in (RUN_DIR / name, RUN_DIR / f"{name}.toml") if p.exists()]


def names() -> set[str]:
    """Every instance name with files under var/run."""
    if not RUN_DIR.is_dir():
        return set()
    return {p.name if p.is_dir() else p.stem for p in RUN_DIR.iterdir()
            if p.is_dir() or p.suffix == ".toml"}


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
