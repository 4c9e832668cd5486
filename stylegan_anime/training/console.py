"""Console output that never costs a run, and the run's log.txt.

A training run writes to a terminal, a pipe (`| tee log`), or a scheduler's file, and to RUN/log.txt. The
console can go away at any time: the terminal closes (SIGHUP, then EIO on every write), the reader of a pipe
exits (EPIPE: BrokenPipeError, as Python ignores SIGPIPE), a descriptor gets closed. None of that may stop
training or cost a checkpoint:

    guard_std_streams()  sys.stdout / sys.stderr become GuardedStream wrappers: the first write that fails
                         points that file descriptor at /dev/null (so C-level writes and the interpreter's
                         own flush at exit cannot fail either) and every later write is a no-op.
    SIGHUP               while a run trains (and for the whole `train` command) a hang-up is noted in log.txt
                         and otherwise ignored: training goes on, the console writes become no-ops, log.txt
                         keeps everything. Stop such a run with Ctrl-C, SIGINT or SIGTERM (`kill PID`): it saves
                         a checkpoint as usual.
    log.txt              every console line of a run (status lines, warnings, errors, the CLI's lines),
                         appended and flushed line by line. Lines the `train` command says before the run
                         folder exists (a checkpoint set aside ...) are written when it opens.
    say(line)            one line to stderr (guarded) and to the open run log.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

_lock = threading.RLock()
_logs: list["RunLog"] = []  # open run logs, innermost (current) last
_pending: list[str] | None = None  # lines said before the run folder is known (None: not collecting)
_command_logs: list["RunLog"] = []  # logs the `train` command opened (closed by end_command)
_command_hup = None  # (signal, previous handler) installed by begin_command


class GuardedStream:
    """A text stream whose writes never raise: once the console is gone (EPIPE, EIO, a closed file ...) it is
    a no-op, and the descriptor behind it is pointed at /dev/null."""

    def __init__(self, stream):
        self._stream = stream
        self.gone = False

    @property
    def wrapped(self):
        return self._stream

    def write(self, text: str) -> int:
        if self.gone:
            return len(text)
        try:
            return self._stream.write(text)
        except BlockingIOError:  # a non-blocking descriptor that is full: this text is lost, the console is not
            return len(text)
        except RuntimeError:  # a reentrant write (a signal handler's line while the main code writes): dropped
            return len(text)
        except (OSError, ValueError) as e:  # ValueError: I/O operation on a closed file
            self._lose(e)
            return len(text)

    def flush(self) -> None:
        if self.gone:
            return
        try:
            self._stream.flush()
        except (BlockingIOError, RuntimeError):
            pass
        except (OSError, ValueError) as e:
            self._lose(e)

    def isatty(self) -> bool:
        if self.gone:
            return False
        try:
            return bool(self._stream.isatty())
        except (OSError, ValueError, AttributeError):
            return False

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):  # fileno, encoding, buffer ... of the wrapped stream
        return getattr(self._stream, name)

    def _lose(self, e: BaseException) -> None:
        self.gone = True
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass
        name = "stderr" if self._stream is sys.__stderr__ else "stdout" if self._stream is sys.__stdout__ else "console"
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        log(f"console ({name}) gone: {reason}; training goes on, this log keeps every line "
            f"({time.strftime('%Y-%m-%d %H:%M:%S')})")


def guarded(stream) -> GuardedStream:
    """`stream` as a GuardedStream (itself when it already is one)."""
    return stream if isinstance(stream, GuardedStream) else GuardedStream(stream)


def guard_std_streams() -> None:
    """Wrap sys.stdout and sys.stderr in GuardedStream (idempotent). Whoever replaced them (pytest's capture)
    and puts its own back later simply drops the wrappers."""
    with _lock:
        if sys.stdout is not None:
            sys.stdout = guarded(sys.stdout)
        if sys.stderr is not None:
            sys.stderr = guarded(sys.stderr)


def stderr() -> GuardedStream:
    """The current sys.stderr, guarded (for tqdm's `file=`)."""
    guard_std_streams()
    return sys.stderr


def isatty(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


class RunLog:
    """RUN/log.txt, opened for appending; each line is flushed. A failing write (a full disk) drops the line:
    the checkpoint code reports such disks, the log never stops a run."""

    def __init__(self, run_dir):
        self.path = Path(run_dir) / "log.txt"
        self.file = open(self.path, "a", encoding="utf-8")
        self.users = 1

    def write(self, line: str) -> None:
        if self.file is None:
            return
        try:
            self.file.write(line.rstrip("\n") + "\n")
            self.file.flush()
        except (OSError, ValueError, RuntimeError):  # RuntimeError: a reentrant write from a signal handler
            pass

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
            self.file = None


def open_run_log(run_dir) -> RunLog:
    """Open RUN/log.txt (or count one more user of the already open one) and make it the current log; lines
    collected before the run folder was known are written first."""
    global _pending
    path = Path(run_dir) / "log.txt"
    with _lock:
        for rl in _logs:
            if rl.path.resolve() == path.resolve():
                rl.users += 1
                _logs.remove(rl)
                _logs.append(rl)
                return rl
        rl = RunLog(run_dir)
        _logs.append(rl)
        if _pending:
            for line in _pending:
                rl.write(line)
        _pending = None
        return rl


def close_run_log(rl: RunLog | None) -> None:
    with _lock:
        if rl is None or rl not in _logs:
            return
        rl.users -= 1
        if rl.users <= 0:
            _logs.remove(rl)
            rl.close()


def log(line: str) -> None:
    """A line for the current run log only (or the pending lines of the `train` command)."""
    with _lock:
        if _logs:
            _logs[-1].write(line)
        elif _pending is not None and len(_pending) < 1000:
            _pending.append(line)


def say(line: str) -> None:
    """One line to stderr (never raising) and to the current run log."""
    stream = guarded(sys.stderr)
    stream.write(line + "\n")
    stream.flush()
    log(line)


def _hangup(signum, frame) -> None:
    log(f"SIGHUP ({time.strftime('%Y-%m-%d %H:%M:%S')}): the terminal hung up; training goes on, its lines "
        f"continue here (stop it with Ctrl-C, kill -INT or kill -TERM {os.getpid()})")


def ignore_hangup():
    """Install the SIGHUP handler (note it, go on); returns the previous handler, or None when it cannot be
    installed (no SIGHUP on this platform, not the main thread)."""
    sig = getattr(signal, "SIGHUP", None)
    if sig is None:
        return None
    try:
        return sig, signal.signal(sig, _hangup)
    except (ValueError, OSError):  # not the main thread
        return None


def install_stop_handlers(request_stop) -> dict:
    """While a run trains: SIGINT and SIGTERM call request_stop(signum, frame), SIGHUP is noted and ignored. Returns
    {signal: previous handler} for restore_handlers; in a thread other than the main one, signals are left alone."""
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, request_stop)
        except ValueError:  # not the main thread
            pass
    hup = ignore_hangup()  # a closed terminal: noted in log.txt, training goes on
    if hup is not None:
        old[hup[0]] = hup[1]
    return old


def restore_handlers(old: dict) -> None:
    """Put back the handlers install_stop_handlers replaced."""
    for sig, handler in old.items():
        signal.signal(sig, handler)


def restore_hangup(previous) -> None:
    if previous is not None:
        try:
            signal.signal(*previous)
        except (ValueError, OSError, TypeError):
            pass


def begin_command() -> None:
    """The `train` command starts: guard the console, ignore SIGHUP, collect lines until the run log opens."""
    global _pending, _command_hup
    end_command()
    guard_std_streams()
    with _lock:
        _pending = []
    _command_hup = ignore_hangup()


def command_run_log(run_dir) -> None:
    """The `train` command's own hold on RUN/log.txt, until end_command (so that its final lines, and main's
    `error:` line, reach the log)."""
    _command_logs.append(open_run_log(run_dir))


def end_command() -> None:
    """The command is over: flush the console, close the logs it opened, put SIGHUP back."""
    global _pending, _command_hup
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, GuardedStream):
            stream.flush()
    while _command_logs:
        close_run_log(_command_logs.pop())
    with _lock:
        _pending = None
    restore_hangup(_command_hup)
    _command_hup = None


def format_duration(seconds: float) -> str:
    """42s, 5m12s, 3h05m, 2d04h."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


__all__ = ["GuardedStream", "RunLog", "begin_command", "close_run_log", "command_run_log", "end_command",
           "format_duration", "guard_std_streams", "guarded", "ignore_hangup", "install_stop_handlers", "isatty", "log",
           "open_run_log", "restore_handlers", "restore_hangup", "say", "stderr"]
