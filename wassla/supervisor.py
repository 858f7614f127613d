"""The child processes of `wassla dev`: started in order, each ready before the next needs it,
their output on one terminal (`gateway  | ...`), the first one to die named, all stopped on
Ctrl-C in the reverse order of their start.

Why not honcho or a Procfile: `wassla dev` starts its children in stages (livekit-server
answering before the worker dials it, the gateway answering before the console link is
printed), and honcho starts every command at once through a shell.

Each child runs in a session of its own, so the terminal's Ctrl-C reaches only `wassla dev`,
which then stops the children one by one (the worker drains first); each also gets SIGTERM
if `wassla dev` itself dies (PR_SET_PDEATHSIG), so none is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

_TAIL_LINES = 30  # a dead child's last lines, printed with its exit for file-logged children


class ChildFailed(Exception):
    """A child exited, or did not get ready, while `wassla dev` waited for it."""


def dying_with_parent(argv: list[str]) -> list[str]:
    """`argv` run so that it gets SIGTERM when the process that starts it dies.

    Through util-linux's `setpriv --pdeathsig`, which sets PR_SET_PDEATHSIG and execs `argv`,
    rather than a `preexec_fn`: Python code between fork and exec can deadlock the child on a
    lock another thread held at the fork (CPython 3.11; a bench worker's start hung so).
    A parent that dies before setpriv has set the signal, its child's first millisecond or
    so, leaves the child running: setpriv does not check that its parent is still there."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # not Linux with util-linux: no parent-death signal
        return argv
    return [setpriv, "--pdeathsig", "TERM", "--", *argv]


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    stop_grace: float
    log_path: Path | None = None  # output goes here instead of the terminal (noisy children)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=_TAIL_LINES))
    pump: asyncio.Task[None] | None = None
    ready_line: str | None = None  # a line that says the child is ready, when it has one
    said_ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.process.returncode is None


class Supervisor:
    def __init__(self, say: Callable[[str], None], out: TextIO | None = None) -> None:
        self._say = say
        self._out = out if out is not None else sys.stdout
        self.children: list[Child] = []
        self._width = 8

    async def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path | None = None,
        stop_grace: float = 10.0,
        ready_line: str | None = None,
    ) -> Child:
        """Start `argv`; its output is prefixed with `name` (or written to `log_path`);
        `child.said_ready` is set once a line of its output contains `ready_line`."""
        process = await asyncio.create_subprocess_exec(
            *dying_with_parent(argv),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(
            name=name,
            process=process,
            stop_grace=stop_grace,
            log_path=log_path,
            ready_line=ready_line,
        )
        self._width = max(self._width, len(name))
        child.pump = asyncio.create_task(self._pump(child), name=f"output:{name}")
        self.children.append(child)
        return child

    async def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        log = child.log_path.open("a", encoding="utf-8") if child.log_path else None
        try:
            while line := await child.process.stdout.readline():
                text = line.decode("utf-8", "replace").rstrip("\n")
                child.tail.append(text)
                if child.ready_line is not None and child.ready_line in text:
                    child.said_ready.set()
                if log is not None:
                    log.write(text + "\n")
                    log.flush()
                else:
                    self._out.write(f"{child.name:<{self._width}} | {text}\n")
                    self._out.flush()
        finally:
            if log is not None:
                log.close()

    async def wait_ready(
        self,
        child: Child,
        ready: Callable[[], Awaitable[bool]],
        *,
        within: float,
        what: str,
    ) -> float:
        """Seconds until `ready()` holds; ChildFailed if the child exits or time runs out."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            if not child.running:
                raise ChildFailed(f"{child.name} exited with status {child.process.returncode}")
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                if await ready():
                    return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise ChildFailed(f"{child.name} was not {what} within {within:.0f} s")

    async def watch(self, stop: asyncio.Event) -> Child | None:
        """Until a child exits (returned) or `stop` is set (None)."""
        waits = {asyncio.create_task(c.process.wait()): c for c in self.children}
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*waits, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*waits, stopping]:
                task.cancel()
        return next((waits[t] for t in done if t in waits), None)

    def report_exit(self, child: Child) -> None:
        """Say which child died and how, with its last lines when they went to a file."""
        self._say(f"{child.name} exited with status {child.process.returncode}")
        if child.log_path is not None:
            self._say(f"its last lines ({child.log_path}):")
            for line in child.tail:
                self._out.write(f"{child.name:<{self._width}} | {line}\n")
            self._out.flush()

    async def stop_all(self, *, force: asyncio.Event | None = None) -> None:
        """SIGTERM each child, newest first, SIGKILL (its whole group) after its grace or at
        once when `force` is set (a second Ctrl-C)."""
        for child in reversed(self.children):
            if child.running:
                self._say(f"stopping {child.name}")
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
                await self._wait_or_kill(child, force)
            if child.pump is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(child.pump, timeout=5)
            # What a child left behind in its group (a worker's job processes) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)

    async def _wait_or_kill(self, child: Child, force: asyncio.Event | None) -> None:
        waiting = asyncio.ensure_future(child.process.wait())
        waits: list[asyncio.Future[Any]] = [waiting]
        if force is not None:
            waits.append(asyncio.ensure_future(force.wait()))
        await asyncio.wait(waits, timeout=child.stop_grace, return_when=asyncio.FIRST_COMPLETED)
        for task in waits[1:]:
            task.cancel()
        if child.running:
            self._say(f"{child.name} did not stop within {child.stop_grace:.0f} s: killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
        await waiting
