"""A child process that answers lines with lines, handled so the event loop never waits for it.

The IPMI driver runs pyghmi in such a worker (see `ipmi`). What could block, and how it doesn't:
- Starting: `subprocess.Popen` returns only once the child has exec'd. On a busy machine that
  took up to 119 ms (median 0.4 ms; 2 cores at load 6), so it runs on a short-lived thread.
  (asyncio's own subprocess support calls Popen on the loop.)
- Exiting: a pidfd (Linux 5.3+) on the loop says when the child has exited, and it is reaped
  then with a non-blocking wait: no waitpid thread per child, and a child that was killed is
  reaped even when nobody awaits it. Without pidfds, a 50 ms `poll()` timer does the same.
- Writing: stdin is non-blocking. The protocols here send one short line, then wait for the
  answer, so the pipe never fills; if it did, the write fails instead of blocking.
- Reading: stdout goes through an asyncio StreamReader.

A worker is killed with SIGKILL by its PID, and only while it is unreaped: until then the PID
cannot belong to another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence

_POLL_SECONDS = 0.05


class LineWorker:
    """One child process, its stdin and stdout. Make it with `await LineWorker.start(argv)`."""

    def __init__(self, process: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.pid = process.pid
        self._loop = loop
        self._exit: asyncio.Future[int] = loop.create_future()
        self._stdin = process.stdin
        os.set_blocking(self._stdin.fileno(), False)
        self._reader = asyncio.StreamReader()
        self._stdout: asyncio.ReadTransport | None = None
        self._watch_exit()

    @classmethod
    async def start(cls, argv: Sequence[str]) -> LineWorker:
        """Start `argv` with pipes for stdin and stdout (stderr is ours), in its own session
        (a Ctrl-C at the parent's terminal is the parent's)."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[LineWorker] = loop.create_future()

        def adopt(process: subprocess.Popen[bytes]) -> None:
            worker = cls(process, loop)
            if started.cancelled():  # the caller gave up while it was starting
                worker.kill()
            else:
                started.set_result(worker)

        def fail(exc: OSError) -> None:
            if not started.cancelled():
                started.set_exception(exc)

        def spawn() -> None:
            try:
                # The argv is the caller's own program (sys.executable -m ...), not input.
                process = subprocess.Popen(  # noqa: S603
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
                )
            except OSError as exc:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(fail, exc)
                return
            try:
                loop.call_soon_threadsafe(adopt, process)
            except RuntimeError:  # the loop has closed: nobody will use it
                process.kill()
                process.wait()

        threading.Thread(target=spawn, name="line-worker-start", daemon=True).start()
        worker = await started
        try:
            protocol = asyncio.StreamReaderProtocol(worker._reader)
            worker._stdout, _ = await loop.connect_read_pipe(
                lambda: protocol, worker.process.stdout
            )
        except BaseException:
            worker.kill()
            raise
        return worker

    @property
    def exited(self) -> bool:
        """True once the child has exited and been reaped."""
        return self._exit.done()

    def send_line(self, line: str) -> None:
        """Write one line; OSError when the child is gone or not reading (never blocks)."""
        data = line.encode() + b"\n"
        written = os.write(self._stdin.fileno(), data)
        if written != len(data):
            raise BlockingIOError(f"the worker's stdin took {written} of {len(data)} bytes")

    async def read_line(self) -> bytes:
        """The next line from the child's stdout; b"" once it has closed it (exited)."""
        return await self._reader.readline()

    async def wait(self) -> int:
        """The exit code (negative: the signal that ended it), once it is reaped."""
        return await asyncio.shield(self._exit)

    def kill(self) -> None:
        """SIGKILL now, and close the pipes; the exit watcher reaps it."""
        if not self._exit.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self._close_stdin()
        self._close_stdout()

    def on_exit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the child has exited and been reaped (at once if it has)."""
        self._exit.add_done_callback(lambda _: callback())

    def end_soon(self, grace: float) -> None:
        """`finish` without waiting: close stdin now, kill after `grace` seconds if the child
        is still there. For a caller that must not wait (it runs from a callback)."""
        self._close_stdin()
        deadline = self._loop.call_later(grace, self.kill)

        def ended(_: object) -> None:
            deadline.cancel()
            self._close_stdout()

        self._exit.add_done_callback(ended)

    async def finish(self, grace: float) -> int:
        """Close stdin (the child's cue to end), wait up to `grace` seconds, then kill."""
        self._close_stdin()
        try:
            async with asyncio.timeout(grace):
                code = await self.wait()
        except TimeoutError:
            self.kill()
            code = await self.wait()
        self._close_stdout()
        return code

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()

    def _close_stdout(self) -> None:
        if self._stdout is not None:
            self._stdout.close()
        elif self.process.stdout is not None:  # never connected: the start was given up
            self.process.stdout.close()

    def _watch_exit(self) -> None:
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfds (Linux < 5.3): poll instead
            self._poll_exit()
            return

        def readable() -> None:
            self._loop.remove_reader(pidfd)
            os.close(pidfd)
            self._poll_exit()

        self._loop.add_reader(pidfd, readable)

    def _poll_exit(self) -> None:
        code = self.process.poll()  # reaps it if it has exited; never blocks
        if code is None:
            self._loop.call_later(_POLL_SECONDS, self._poll_exit)
        elif not self._exit.done():
            self._exit.set_result(code)
