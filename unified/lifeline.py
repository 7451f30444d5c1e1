"""``python -I -S lifeline.py FD PROGRAM [ARG...]``: runs PROGRAM as its child and ends with it, and kills its whole
process group (the session the executor started it in) once the pipe whose read end is FD reports end of file.

The executor keeps that pipe's write end open while the attempt runs, and nothing else holds it, so the end of file
comes when the worker ends by any means, kill -9 included. Without it the processes of an attempt (a shell command
and what it started, a process-isolation child and its own children) outlived their worker and ran beside the next
attempt of their task on another worker. The launcher itself runs no user code, so nothing can keep it from killing
them: its main thread waits in ``waitpid`` with the GIL released.

Only the standard library, started with ``-I -S``: some 20-30 ms and 10 MB per running attempt.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def _kill_group_at_end_of_file(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> None:
    """Run ``argv[2:]`` under the lifeline ``argv[1]``; exit as it did (its code, or by the same signal)."""
    fd = int(argv[1])
    program = argv[2:]
    os.set_inheritable(fd, False)
    # The launcher is a member of the group it leads: a signal the program sends its group (`kill -USR1 0`, a ^C)
    # must not end it, so it ignores every signal it can. The program gets them all back at their defaults, SIGPIPE
    # among them (Python ignores that one: `yes | head -1` would run on for good).
    glibc_own = range(32, getattr(signal, "SIGRTMIN", 32))  # Linux: 32 and 33 (macOS has no real-time signals)
    kept = (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, *glibc_own)
    caught = [s for s in signal.valid_signals() if s not in kept]
    for number in caught:
        try:
            signal.signal(number, signal.SIG_IGN)
        except (OSError, ValueError):  # one the platform reserves
            continue
    threading.Thread(target=_kill_group_at_end_of_file, args=(fd,), daemon=True).start()
    try:
        defaults = [s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)]
        pid = os.posix_spawnp(program[0], program, os.environ, setsigdef=defaults)
    except OSError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # ended by a signal: end the same way, so the worker reads the same status
        if -code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code  # the signal does not end a process (never seen): the shell's convention
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
