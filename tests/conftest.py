"""Shared fixtures: a private pipeline instance per test, the shared capture folder."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pipeline.transport.registry import Instance

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "binance"


@pytest.fixture
def instance_name() -> str:
    return f"t{os.getpid()}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def instance(instance_name):
    """A fresh instance (registry created); every segment it registered is removed after."""
    inst = Instance.create(instance_name)
    yield inst
    inst.destroy()


@pytest.fixture
def binance_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared Binance captures not found at {SHARED_DATA}")
    return SHARED_DATA
