"""Stop requests: Ctrl-C or SIGTERM ask the loop to stop after the current step and checkpoint.

The first SIGINT/SIGTERM sets a flag; the loop sees it between steps (so the saved state is
always that of a whole number of updates), saves and returns. A second Ctrl-C raises
KeyboardInterrupt at once (the loop then saves only if no update was in progress).
"""
from __future__ import annotations

import signal
import threading


class StopRequest:
    """Context manager installing the handlers (main thread only; elsewhere a no-op)."""

    def __init__(self):
        self.requested = False
        self.signal_name = None
        self._old = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()
        return False


__all__ = ["StopRequest"]
