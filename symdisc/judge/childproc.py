"""A child process that speaks JSON lines over pipes, with deadlines and a process-group kill.

Shared by the gate process and the sandbox worker: both may be stalled or crashed on purpose by
hostile input, so the parent never blocks without a deadline and always kills the whole group.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from typing import Optional


class ChildProcess:
    def __init__(self):
        self.proc: Optional[subprocess.Popen] = None
        self._buffer = b""
        self._selector: Optional[selectors.BaseSelector] = None

    def spawn(self, cmd: list, env: dict) -> None:
        # A new session makes the child its own process-group leader, so killpg reaches anything
        # it started; stderr is dropped because the protocol channel carries all diagnostics.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        self._buffer = b""
        # One selector for the child's life: creating one per read costs more than the gate's check.
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout.fileno(), selectors.EVENT_READ)
        os.set_blocking(self.proc.stdout.fileno(), False)  # read_line may poll before it sleeps

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, obj: dict) -> bool:
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def read_line(self, timeout_s: float, spin_s: float = 0.0) -> Optional[bytes]:
        """The next line, or None if the child closed its output or the deadline passed.

        ``spin_s``: poll without sleeping for that long first. For answers expected within a
        millisecond or two (the gate) this saves the wake-up after select, which on a busy
        two-core machine is most of the round trip's tail; long calls should not spin.
        """
        now = time.monotonic()
        deadline, spin_until = now + timeout_s, now + min(spin_s, timeout_s)
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                now = time.monotonic()
                if now < spin_until:
                    continue
                remaining = deadline - now
                if remaining <= 0 or not self._selector.select(remaining):
                    return None
                continue
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def close(self, grace_s: float = 3.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=grace_s)
        except Exception:
            pass
        self.kill()

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except Exception:
                pass
        self.proc = None
