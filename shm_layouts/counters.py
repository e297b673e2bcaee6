"""Counters area (after Aeron's counters file): process slots, named counters, histograms.

Each word has one writer. Readers (the monitor) map the segment read-only and use
relaxed atomic loads, so reading never disturbs the pipeline.
"""

from __future__ import annotations

import enum

import numpy as np

from shm_layouts.histogram import HISTOGRAM_WORDS
from shm_layouts.ring import LINE_WORDS

MAX_PROCESSES = 16
MAX_COUNTERS = 1024
MAX_HISTOGRAMS = 64
LABEL_BYTES = 48

# process slot: one 128-byte line each
PROC_PID = 0
PROC_CORE = 1
PROC_STATE = 2
PROC_HEARTBEAT = 3  # CLOCK_MONOTONIC ns of the last housekeeping pass
PROC_STARTED = 4
PROC_RESTARTS = 5
PROC_SLICES = 6  # duty-cycle slices run
PROC_WORK = 7  # total work count reported by the agent
PROC_IDLE_STRATEGY = 8


class ProcessState(enum.IntEnum):
    FREE = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    STOPPED = 4
    FAILED = 5


# word indices of the allocation cursors (header line)
NEXT_PROCESS = 0
NEXT_COUNTER = 1
NEXT_HISTOGRAM = 2

PROCESS_BASE = LINE_WORDS
COUNTER_BASE = PROCESS_BASE + MAX_PROCESSES * LINE_WORDS
HISTOGRAM_BASE = COUNTER_BASE + MAX_COUNTERS
WORDS = HISTOGRAM_BASE + MAX_HISTOGRAMS * HISTOGRAM_WORDS

LABEL = np.dtype((np.bytes_, LABEL_BYTES))
# label tables follow the int64 words: process names, counter labels, histogram labels
LABELS = MAX_PROCESSES + MAX_COUNTERS + MAX_HISTOGRAMS
