"""`skiff exec`: run a command in a pod's container.

    skiff exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]

As kubectl: `-i` passes this terminal's stdin to the command, `-t` (with `-i`, when stdin is
a terminal) gives it a terminal: the local one goes into raw mode so keys such as Ctrl-C
reach the command, and its size follows the window. The command's exit code becomes skiff's
(`command terminated with exit code N` on stderr when it is not 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator

from cli import common
from cli.commands.logs import kubelet_error, pod_name
from cli.errors import CliError
from skiff.client import errors
from skiff.client.client import Client, ExecStream

_READ_SIZE = 32 * 1024
NO_TTY_WARNING = "Unable to use a TTY - input is not a terminal or the right kind of file"


def _add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--container", default="",
                   help="the container (default: the pod's only one)")
    p.add_argument("-i", "--stdin", action="store_true",
                   help="pass stdin to the command")
    p.add_argument("-t", "--tty", action="store_true",
                   help="give the command a terminal (with -i, when stdin is one)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only what the command prints")
    common.add_namespace_flags(p, all_namespaces=False)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("exec", help="run a command in a container of a pod",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_flags(p)
    p.add_argument("pod", metavar="POD", help="the pod's name (or pod/NAME)")
    # Everything after the pod, raw: argparse would otherwise eat the command's own options
    # and every `--` in it. run() takes the flags written before `--` out of it.
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")
    p.set_defaults(func=run)


def split_command(args: argparse.Namespace) -> list[str]:
    """The command, from what follows the pod: `web -it -- sh` has its flags after the pod,
    which argparse leaves in the remainder together with the `--`."""
    rest: list[str] = list(args.rest)
    # argparse drops a `--` right after the pod, so a remainder that starts with an option
    # has flags up to its `--` (a command whose name starts with "-" does not exist).
    if rest and rest[0].startswith("-"):
        at = rest.index("--") if "--" in rest else len(rest)
        late = argparse.ArgumentParser(prog="skiff exec", add_help=False)
        _add_flags(late)
        late.parse_args(rest[:at], namespace=args)  # sets only what is given here
        rest = rest[at + 1:]
    if not rest:
        raise CliError("you must specify at least one command for the container "
                       "(skiff exec POD -- COMMAND [ARG...])")
    return rest


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal in raw mode (no echo, no line editing, no signals from keys), restored
    however we leave."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _start_stdin_reader(fd: int, queue: asyncio.Queue[bytes],
                        loop: asyncio.AbstractEventLoop) -> None:
    """Reads stdin in a thread (reads block; the loop must not), handing each chunk over and
    waiting until it is taken, so a big input is not held in memory; b"" is end of file.
    A daemon thread: a command that ends while stdin is still open must not keep us."""
    def read() -> None:
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except OSError:
                data = b""
            try:
                asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
            except (Exception, asyncio.CancelledError):
                return  # the loop is gone: so is the command
            if not data:
                return

    threading.Thread(target=read, name="skiff-exec-stdin", daemon=True).start()


async def _copy_stdin(session: ExecStream, queue: asyncio.Queue[bytes]) -> None:
    while data := await queue.get():
        await session.write(data)
    await session.close_stdin()


def _terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


async def _exec(client: Client, args: argparse.Namespace, command: list[str],
                use_tty: bool) -> int:
    loop = asyncio.get_running_loop()
    stdin_fd = sys.stdin.fileno() if args.stdin else -1
    session = await client.exec(pod_name(args.pod), command, common.namespace(args),
                                container=args.container, tty=use_tty, stdin=args.stdin)
    background: list[asyncio.Task[None]] = []
    raw = raw_terminal(stdin_fd) if use_tty else contextlib.nullcontext()
    try:
        with raw:
            if args.stdin:
                queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)
                _start_stdin_reader(stdin_fd, queue, loop)
                background.append(asyncio.create_task(_copy_stdin(session, queue)))
            if use_tty:
                async def send_size() -> None:
                    size = _terminal_size(stdin_fd)
                    if size:
                        await session.resize(*size)

                await send_size()
                loop.add_signal_handler(
                    signal.SIGWINCH, lambda: background.append(loop.create_task(send_size())))
            out, err = sys.stdout.buffer, sys.stderr.buffer
            async for stream, data in session.output():
                target = err if stream == 2 else out
                target.write(data)
                target.flush()
    finally:
        if use_tty:
            loop.remove_signal_handler(signal.SIGWINCH)
        for task in background:
            task.cancel()
        await session.close()
    return session.exit_code if session.exit_code is not None else 1


def run(args: argparse.Namespace) -> int:
    command = split_command(args)
    use_tty = args.tty and args.stdin
    if use_tty and not os.isatty(sys.stdin.fileno()):
        use_tty = False
        if not args.quiet:
            print(NO_TTY_WARNING, file=sys.stderr)

    async def body(client: Client) -> int:
        try:
            return await _exec(client, args, command, use_tty)
        except errors.Unavailable as err:
            raise (kubelet_error(err) or err) from None

    code = common.run(args, body)
    if code != 0 and not args.quiet:
        print(f"command terminated with exit code {code}", file=sys.stderr)
    return code
