"""The processes: the MCP server runs as our child over stdio; the client is on our stdio.

Shutdown follows the MCP stdio transport: when the client's input ends, the server's
stdin is closed and it has ``grace`` seconds to exit, then SIGTERM, then SIGKILL. On
SIGINT, SIGTERM or SIGHUP the server gets SIGTERM at once (then SIGKILL). The server runs
in its own process group (POSIX), so the signals reach whatever it started. The server's
stderr is ours; the exit code is the server's (128 + N when signal N ended it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence

from sentrail.errors import SentrailError
from sentrail.gateway.gate import Gate
from sentrail.gateway.lines import DEFAULT_LIMIT, Frame, LineSplitter
from sentrail.gateway.relay import Relay

CHUNK = 64 * 1024
Read = Callable[[int], Awaitable[bytes]]
Write = Callable[[bytes], Awaitable[None]]
_POSIX = os.name == "posix"


async def serve(
    command: Sequence[str],
    gate: Gate,
    *,
    monitor: bool = False,
    limit: int = DEFAULT_LIMIT,
    grace: float = 2.0,
    notice: Callable[[str], None] = lambda s: None,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
) -> int:
    """Relay between our stdio and ``command`` until either side ends; its exit code."""
    if not command:
        raise SentrailError("no MCP server command given (put it after --)")
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,
            start_new_session=_POSIX,
        )
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise SentrailError(f"cannot start the MCP server: {why}", command[0]) from None
    try:
        return await _relay(proc, gate, monitor, limit, grace, notice, stdin_fd, stdout_fd)
    finally:
        if proc.returncode is None:  # whatever happened, the server does not outlive us
            _signal(proc, signal.SIGKILL)
            await proc.wait()


async def _relay(
    proc: asyncio.subprocess.Process,
    gate: Gate,
    monitor: bool,
    limit: int,
    grace: float,
    notice: Callable[[str], None],
    stdin_fd: int,
    stdout_fd: int,
) -> int:
    assert proc.stdin is not None and proc.stdout is not None
    server_in, server_out = proc.stdin, proc.stdout
    loop = asyncio.get_running_loop()
    blocking = {fd: os.get_blocking(fd) for fd in (stdin_fd, stdout_fd)}
    signalled, client_gone = asyncio.Event(), asyncio.Event()
    handled = _install_signals(loop, signalled)
    closers: list[Callable[[], None]] = []
    tasks: set[asyncio.Task[object]] = set()
    try:
        read_client, close_in = await _open_input(loop, stdin_fd)
        closers.append(close_in)
        write_client, close_out = await _open_output(loop, stdout_fd)
        closers.append(close_out)

        async def to_client(data: bytes) -> None:
            if client_gone.is_set():
                return
            try:
                await write_client(data)
            except (OSError, RuntimeError):
                client_gone.set()

        async def to_server(data: bytes) -> None:
            try:
                server_in.write(data)
                await server_in.drain()
            except (OSError, RuntimeError):
                pass  # the server is gone; its stdout ends and the relay with it

        relay = Relay(gate, to_client, to_server, monitor=monitor, limit=limit, notice=notice)

        async def on_client(frame: Frame) -> None:
            try:
                await relay.from_client(frame)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await relay.internal_error(frame, exc)

        async def on_server(frame: Frame) -> None:
            try:
                await relay.from_server(frame)
            except Exception as exc:
                notice(f"internal error on a server message (dropped): {type(exc).__name__}")

        async def client_side() -> None:
            try:
                await _pump(read_client, on_client, limit)
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    server_in.close()

        server_task = asyncio.create_task(_pump(server_out.read, on_server, limit))
        tasks |= {
            server_task,
            asyncio.create_task(client_side()),
            asyncio.create_task(signalled.wait()),
            asyncio.create_task(client_gone.wait()),
        }
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if client_gone.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                server_in.close()
        await _reap(proc, grace, signalled)
        # What the server wrote before it exited still reaches the client.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(server_task), grace)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sig in handled:
            loop.remove_signal_handler(sig)
        for close in closers:
            with contextlib.suppress(Exception):
                close()
        for fd, was in blocking.items():
            with contextlib.suppress(OSError):
                os.set_blocking(fd, was)
    code = proc.returncode if proc.returncode is not None else 1
    return 128 - code if code < 0 else code


async def _pump(read: Read, handle: Callable[[Frame], Awaitable[None]], limit: int) -> None:
    splitter = LineSplitter(limit)
    while True:
        chunk = await read(CHUNK)
        if not chunk:
            break
        for frame in splitter.feed(chunk):
            await handle(frame)
    for frame in splitter.finish():
        await handle(frame)


async def _reap(proc: asyncio.subprocess.Process, grace: float, signalled: asyncio.Event) -> None:
    """Wait for the server to exit: ``grace`` seconds (none after a signal), then SIGTERM,
    ``grace`` more, then SIGKILL."""
    if not signalled.is_set():
        waiter = asyncio.ensure_future(proc.wait())
        stop = asyncio.ensure_future(signalled.wait())
        await asyncio.wait({waiter, stop}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        waiter.cancel()
        if proc.returncode is not None:
            return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal(proc, sig)
        try:
            await asyncio.wait_for(proc.wait(), grace)
            return
        except TimeoutError:
            continue


def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _POSIX:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def _install_signals(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> list[int]:
    handled = []
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            loop.add_signal_handler(sig, event.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        handled.append(sig)
    return handled


async def _open_input(loop: asyncio.AbstractEventLoop, fd: int) -> tuple[Read, Callable[[], None]]:
    """A reader for ``fd``: an asyncio pipe, or (a regular file) a thread with a small queue."""
    reader = asyncio.StreamReader(limit=CHUNK, loop=loop)
    pipe = open(fd, "rb", buffering=0, closefd=False)  # noqa: SIM115 - the transport owns it
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
        )
    except ValueError:
        pipe.close()
        return _thread_reader(loop, fd), lambda: None
    return reader.read, transport.close


def _thread_reader(loop: asyncio.AbstractEventLoop, fd: int) -> Read:
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=8)

    def work() -> None:
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError:
                chunk = b""
            try:
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except Exception:
                return
            if not chunk:
                return

    threading.Thread(target=work, name="sentrail-stdin", daemon=True).start()
    done = False

    async def read(_n: int) -> bytes:
        nonlocal done
        if done:
            return b""
        chunk = await queue.get()
        done = not chunk
        return chunk

    return read


async def _open_output(
    loop: asyncio.AbstractEventLoop, fd: int
) -> tuple[Write, Callable[[], None]]:
    """A writer for ``fd`` with backpressure: an asyncio pipe, or plain writes (a file)."""
    pipe = open(fd, "wb", buffering=0, closefd=False)  # noqa: SIM115 - the transport owns it
    try:
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), pipe
        )
    except ValueError:
        pipe.close()

        async def write_file(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        return write_file, lambda: None
    writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return write, transport.close
