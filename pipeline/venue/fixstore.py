"""Per-session FIX state on disk: sequence numbers and every message sent.

``<dir>/seqnums`` holds "next_out next_in" in a fixed-width record rewritten in place
(one pwrite per change); ``<dir>/messages`` is append-only, one record per sent message
(``<seq> <len>\\n<raw>\\n``), read back to answer ResendRequest after a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

_WIDTH = 44


class FixStore:
    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.next_out = 1
        self.next_in = 1
        self.sent: dict[int, bytes] = {}
        seq_path = path / "seqnums"
        if seq_path.exists():
            text = seq_path.read_text().split()
            if len(text) == 2 and all(t.isdigit() for t in text):
                self.next_out, self.next_in = int(text[0]), int(text[1])
        self._load_messages()
        self._seq_fd = os.open(seq_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._msg = open(path / "messages", "ab")  # noqa: SIM115 (kept open for appends)
        self._write_seqs()

    def _load_messages(self) -> None:
        p = self.path / "messages"
        if not p.exists():
            return
        data = p.read_bytes()
        i = 0
        while i < len(data):
            nl = data.find(b"\n", i)
            if nl < 0:
                break
            head = data[i:nl].split()
            if len(head) != 2 or not all(h.isdigit() for h in head):
                break  # torn tail after a crash: keep what is whole
            seq, n = int(head[0]), int(head[1])
            if nl + 1 + n + 1 > len(data):
                break
            self.sent[seq] = data[nl + 1:nl + 1 + n]
            i = nl + 1 + n + 1

    def _write_seqs(self) -> None:
        rec = f"{self.next_out} {self.next_in}".ljust(_WIDTH - 1) + "\n"
        os.pwrite(self._seq_fd, rec.encode(), 0)

    def record_sent(self, seq: int, raw: bytes) -> None:
        self.sent[seq] = raw
        self._msg.write(b"%d %d\n" % (seq, len(raw)) + raw + b"\n")
        self._msg.flush()
        self.next_out = seq + 1
        self._write_seqs()

    def set_next_in(self, n: int) -> None:
        self.next_in = n
        self._write_seqs()

    def reset(self) -> None:
        self.next_out = self.next_in = 1
        self.sent.clear()
        self._msg.close()
        self._msg = open(self.path / "messages", "wb")  # noqa: SIM115
        self._write_seqs()

    def close(self) -> None:
        self._msg.close()
        os.close(self._seq_fd)
