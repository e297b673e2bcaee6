"""Control area: operator commands (``hft ctl``) and the state flags processes obey.

int64 words; each line has one writer (or, for the command slots, one writer per claimed
sequence)::

    line 0        config: version, command slots, handler slots (written at creation)
    line 1        flags, written by ``hft ctl``: kill switch, quoting paused, change count
    line 2        W_CLAIM: the last command sequence claimed (fetch-add by issuers)
    CMD_BASE      N_COMMANDS command slots of 8 words: the command with sequence ``s``
                  (1, 2, ...) lives in slot ``s % N_COMMANDS``; its stamp word is written
                  ``-s`` before the fields and ``s`` (release) after, seqlock style
    HANDLER_BASE  MAX_HANDLERS lines, one per process that executes commands
    ACK_BASE      per command slot and handler: (ack sequence, status), written by that
                  handler: status first, then the ack sequence with a release store
    after words   handler names (S32 each)

The flags are state (they hold until changed and apply to processes started later);
commands are events (a process that starts later does not execute earlier commands).
"""

from __future__ import annotations

import enum

import numpy as np

from shm_layouts.ring import LINE_WORDS

CONTROL_VERSION = 1
N_COMMANDS = 16
MAX_HANDLERS = 8
NAME_BYTES = 32
HANDLER_NAME = np.dtype((np.bytes_, NAME_BYTES))

# line 0: config
W_VERSION = 0
W_N_COMMANDS = 1
W_MAX_HANDLERS = 2
# line 1: flags
W_KILL = 1 * LINE_WORDS
W_PAUSED = W_KILL + 1
W_FLAG_CHANGES = W_KILL + 2
# line 2: command sequence claim
W_CLAIM = 2 * LINE_WORDS

# command slots
CMD_BASE = 3 * LINE_WORDS
CMD_WORDS = 8
CMD_STAMP = 0
CMD_OP = 1
CMD_ARG0 = 2  # symbol id for RESYNC
CMD_ARG1 = 3
CMD_PID = 4  # issuer
CMD_ISSUED_NS = 5  # CLOCK_MONOTONIC

# handler lines
HANDLER_BASE = CMD_BASE + N_COMMANDS * CMD_WORDS
H_STATE = 0  # HandlerState
H_OPS = 1  # bit mask of Op values the handler executes
H_PID = 2
H_HEARTBEAT = 3  # CLOCK_MONOTONIC ns of its last poll
H_SEEN = 4  # last command sequence it has looked at
H_EXECUTED = 5  # commands it acknowledged
H_ATTACHES = 6
H_SKIPPED = 7  # commands it could not read: fell behind, abandoned, or an unknown op

ACK_BASE = HANDLER_BASE + MAX_HANDLERS * LINE_WORDS
ACK_WORDS = 2  # (sequence, status)
WORDS = ACK_BASE + N_COMMANDS * MAX_HANDLERS * ACK_WORDS
BODY_SIZE = WORDS * 8 + MAX_HANDLERS * NAME_BYTES

assert HANDLER_BASE % LINE_WORDS == 0 and ACK_BASE % LINE_WORDS == 0


class Op(enum.IntEnum):
    KILL_ON = 1  # the kill switch: no new orders; the gateway cancels what is open
    KILL_OFF = 2
    CANCEL_ALL = 3
    PAUSE = 4  # stop quoting (strategy); open orders stay
    RESUME = 5
    RESYNC = 6  # drop the book of symbol ARG0 and re-snapshot it


class Status(enum.IntEnum):
    DONE = 1
    REFUSED = 2  # understood but not applicable (e.g. unknown symbol id)
    FAILED = 3


class HandlerState(enum.IntEnum):
    FREE = 0
    ACTIVE = 1
    SETTING_UP = -1


def handler_word(slot: int, offset: int) -> int:
    return HANDLER_BASE + slot * LINE_WORDS + offset


def ack_word(seq: int, slot: int) -> int:
    return ACK_BASE + ((seq % N_COMMANDS) * MAX_HANDLERS + slot) * ACK_WORDS


def ops_mask(ops) -> int:
    mask = 0
    for op in ops:
        mask |= 1 << int(op)
    return mask
