"""The in-sandbox supervisor: a stdlib-only program run by ``/usr/bin/python3 -I -S``.

It speaks length-prefixed JSON frames with the host (4-byte big-endian length, then UTF-8
JSON; bytes travel base64), requests and answers matched by id. It is two kinds of process:

- the *front* (this program): talks to the host on stdin/stdout, keeps started processes
  (their logs, followers, stdin, terminal) and owns the pool of runners;
- *runners*: forks of the front that carry the per-command rlimits and are child subreapers.
  A runner runs one command at a time: it starts it with ``posix_spawn`` (vfork speed: no
  Python fork per command) in a session of its own, enforces the timeout, and when the
  command ends kills its process group and every orphan re-parented to it, daemons included,
  so pipes reach EOF and nothing outlives the command. The rusage of the command and of every
  orphan it reaped covers the whole tree.

Commands reach runners two ways. The *exec server* is the runner holding the sandbox's exec
channel (a socket the host passes in, ``config["exec_fd"]``): the host sends it one ``exec``
at a time and it answers directly, reading the command's output itself, so a command costs
the host one round trip to one process. Everything else goes through the front: commands the
host sends while the exec server is busy (or when there is no exec channel, as under docker) go
to an idle runner, which runs them the same way and whose answers the front passes on; started
processes too, but for those the front makes the pipes or pty and keeps the output. A runner
whose command floods a stream past its cap hands that pipe to the front to drain, so its own
CPU per command stays bounded.

Runners, not the front, carry the rlimits because RLIMIT_CPU counts a process's own CPU time:
the front drains long-lived output and would eventually hit it. A runner retires (the front
replaces it) once it has used half of that limit itself.

Everything here runs with the user's uid inside the sandbox, so the host treats the answers
as untrusted data. The front makes itself non-dumpable (runners inherit it) so user code
cannot rewrite them via /proc/pid/mem.

This file must not import anything outside the standard library, and it stays one file
(past the usual 400 lines, and 800) because it is shipped into the sandbox as a single
program. Its startup is on the cold-create path, so it imports only builtin modules up front:
no ``json`` (it imports ``re``), ``signal`` (``enum``), ``ctypes``, ``selectors`` or
``typing``; the C accelerators those wrap are used directly, the pty helpers when first used.
"""

from __future__ import annotations

import _socket
import binascii
import marshal
import os
import resource
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable
    from typing import Any
else:
    import _signal

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
READ_BYTES = 65536
MAX_IDLE_RUNNERS = 2
POLLIN = select.POLLIN
POLLOUT = select.POLLOUT


def _prctl_function() -> Callable[[int, int], object]:
    """prctl(2) via ``_ctypes`` (a fraction of a millisecond to import; ``ctypes`` takes ~4)."""
    try:
        import _ctypes

        address = _ctypes.dlsym(_ctypes.dlopen(None), "prctl")  # type: ignore[arg-type]
        return lambda option, value: _ctypes.call_function(address, (option, value, 0, 0, 0))
    except (ImportError, AttributeError, OSError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return lambda option, value: libc.prctl(option, value, 0, 0, 0)


_prctl = _prctl_function()


class _JsonContext:
    """What ``_json``'s C scanner reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


try:
    import _json

    _scan = _json.make_scanner(_JsonContext())  # type: ignore[arg-type]
    _encode = _json.make_encoder(
        None, repr, _json.encode_basestring_ascii, None, ":", ",", False, False, False
    )

    def _loads(text: str) -> Any:
        try:
            return _scan(text, 0)[0]
        except StopIteration as exc:  # The C scanner's way of saying "not JSON".
            raise ValueError(f"malformed JSON at {exc.value}") from None

    def _dumps(value: Any) -> str:
        return "".join(_encode(value, 0))

except ImportError:  # An interpreter built without the accelerator.
    import json

    def _loads(text: str) -> Any:
        return json.loads(text)

    def _dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"))


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _take_frames(buffer: bytearray) -> list[bytes]:
    """Remove every complete frame from ``buffer`` and return their payloads."""
    frames = []
    while len(buffer) >= 4:
        size = int.from_bytes(buffer[:4], "big")
        if len(buffer) < 4 + size:
            break
        frames.append(bytes(buffer[4 : 4 + size]))
        del buffer[: 4 + size]
    return frames


def _write_all(fd: int, data: bytes) -> None:
    """Write a whole frame to a non-blocking fd, waiting for room when the reader is slow."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


class _IgnoreClosed:  # contextlib.suppress, without one more import on the startup path
    """Ignore OSError: the peer closed the channel, nobody is left to answer."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


def _send_fds(sock: _socket.socket, message: dict[str, Any], fds: list[int]) -> None:
    """A marshal frame between the front and its runners, with fds passed along."""
    payload = _frame(marshal.dumps(message))
    if not fds:
        sock.sendall(payload)
        return
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    sent = sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    if sent < len(payload):
        sock.sendall(payload[sent:])


def _recv_fds(sock: _socket.socket, inbox: bytearray, fds: list[int]) -> list[Any] | None:
    """Read what the peer sent: its messages (fds go to ``fds``), or None once it is gone."""
    try:
        data, ancillary, _, _ = sock.recvmsg(
            READ_BYTES, _socket.CMSG_SPACE(16), _socket.MSG_DONTWAIT
        )
    except BlockingIOError:
        return []
    except OSError:
        return None
    if not data:
        return None
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    inbox += data
    # Marshal only between the front and its own runners, over a private socketpair.
    return [marshal.loads(frame) for frame in _take_frames(inbox)]  # noqa: S302


class _Loop:
    """A poll loop dispatching ready fds to their handlers.

    An fd watched while a batch of events is handled is skipped until the next poll: its
    number may be a just-closed fd's, whose stale event must not reach the new handler. So a
    handler only runs for real readiness, and reads on pipes can stay blocking."""

    def __init__(self) -> None:
        self.poller = select.poll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.fresh: set[int] = set()
        self.running = True

    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None:
        self.poller.register(fd, events)
        self.handlers[fd] = handler
        self.fresh.add(fd)

    def unwatch(self, fd: int) -> None:
        self.poller.unregister(fd)
        del self.handlers[fd]

    def dispatch(self, timeout_ms: int | None) -> bool:
        """Handle what is ready; False when nothing was."""
        self.fresh.clear()
        events = self.poller.poll(timeout_ms)
        for fd, _ in events:
            handler = self.handlers.get(fd)
            if handler is not None and fd not in self.fresh:
                handler(fd)
        return bool(events)


class Capture:
    """An exec's output: kept (or streamed as chunks) up to ``cap`` bytes per stream."""

    __slots__ = ("cap", "counted", "kept", "request_id", "send", "stream", "truncated")

    def __init__(
        self, request_id: int, stream: bool, cap: int, send: Callable[[dict[str, Any]], None]
    ) -> None:
        self.request_id = request_id
        self.stream = stream
        self.cap = cap
        self.send = send
        self.kept = {"stdout": bytearray(), "stderr": bytearray()}
        self.counted = {"stdout": 0, "stderr": 0}
        self.truncated = False

    def feed(self, name: str, data: bytes) -> bool:
        """Take what was read from ``name``; True when some of it was past the cap (dropped)."""
        room = self.cap - self.counted[name]
        past = len(data) > room
        if past:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.counted[name] += len(data)
            if self.stream:
                self.send(
                    {"id": self.request_id, "type": "chunk", "stream": name, "data": _b64(data)}
                )
            else:
                self.kept[name].extend(data)
        return past

    def result(self, status: dict[str, Any], started: float) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "type": "result",
            **status,
            "duration_ms": (time.monotonic() - started) * 1000.0,
            "truncated": self.truncated,
            "stdout": "" if self.stream else _b64(bytes(self.kept["stdout"])),
            "stderr": "" if self.stream else _b64(bytes(self.kept["stderr"])),
        }


# --- killing process trees (runner and front) ---------------------------------------------------


def _children() -> list[int]:
    """This process's children, zombies included."""
    me = os.getpid()
    try:
        with open(f"/proc/self/task/{me}/children", "rb") as listing:
            return [int(pid) for pid in listing.read().split()]
    except FileNotFoundError:  # A kernel without CONFIG_PROC_CHILDREN: scan /proc.
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(name))
        return found


def _kill(pid: int, *, group: bool = False) -> None:
    try:
        (os.killpg if group else os.kill)(pid, _signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def _kill_tree(leader: int) -> None:
    """Kill the command's process group and every child of this process (a runner)."""
    if leader:
        _kill(leader, group=True)
    for pid in _children():
        _kill(pid)


def _set_rlimit(name: str, value: int) -> None:
    # CPU: the soft limit sends SIGXCPU (a reportable reason), the hard one a second later KILLs.
    hard = value + 1 if name == "cpu" else value
    resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (value, hard))


def _own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


# --- runners --------------------------------------------------------------------------------------


def _exec_on_pty(spec: dict[str, Any], tty: int) -> None:
    """In a forked child: take the pty as controlling terminal and stdio, then exec."""
    import fcntl
    import termios

    try:
        os.setsid()
        for target in (0, 1, 2):
            os.dup2(tty, target)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        os.chdir(spec["cwd"])
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])  # noqa: S606 - the user's argv
    except OSError as exc:
        os.write(2, f"sandbox: cannot run {spec['argv'][0]!r}: {exc.strerror}\n".encode())
        os._exit(126 if isinstance(exc, PermissionError) else 127)


def _spawn(spec: dict[str, Any], stdio: list[int]) -> int:
    """Start the command as a session leader; 0 when it cannot run (reported like a shell)."""
    if spec.get("pty"):
        leader = os.fork()
        if leader == 0:
            _exec_on_pty(spec, stdio[0])
        return leader
    try:
        os.chdir(spec["cwd"])
        return os.posix_spawnp(
            spec["argv"][0],
            spec["argv"],
            spec["env"],
            file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)],
            setsid=True,
            setsigdef=(_signal.SIGPIPE,),  # Python ignores it; commands get the default.
        )
    except OSError as exc:
        os.write(stdio[2], f"sandbox: cannot run {spec['argv'][0]!r}: {exc.strerror}\n".encode())
        return 0
    finally:
        os.chdir("/")  # Never pin a workspace: it is detached between leases.


class _Command:
    """A runner's current command."""

    __slots__ = (
        "capture",
        "cpu_s",
        "deadline",
        "held",
        "killed",
        "leader",
        "max_rss_kib",
        "pipes",
        "seq",
        "started",
        "status",
        "stdin_fd",
        "stdin_pending",
        "timed_out",
    )

    def __init__(self, seq: int, leader: int, started: float, timeout_s: float | None) -> None:
        self.seq = seq  # the front's number for it; 0 for the exec server's own requests
        self.leader = leader
        self.started = started
        self.deadline = started + timeout_s if timeout_s else None
        self.status: int | None = None if leader else 127 << 8  # wait status; shell's 127
        self.timed_out = False
        self.killed = False
        self.cpu_s = 0.0
        self.max_rss_kib = 0
        self.held: set[int] = set()  # a process's output ends: closed after the report
        self.capture: Capture | None = None  # an exec's output, read by this runner
        self.pipes: dict[int, str] = {}
        self.stdin_fd = -1
        self.stdin_pending = b""

    def add_usage(self, usage: resource.struct_rusage) -> None:
        self.cpu_s += usage.ru_utime + usage.ru_stime
        self.max_rss_kib = max(self.max_rss_kib, usage.ru_maxrss)

    def report(self) -> dict[str, Any]:
        return {
            "exit_code": os.waitstatus_to_exitcode(self.status or 0),
            "timed_out": self.timed_out,
            "killed": self.killed,
            "cpu_s": self.cpu_s,
            "max_rss_bytes": self.max_rss_kib * 1024,
        }


class _Runner(_Loop):
    """A runner's life: run commands from the front (or, as exec server, from the host).

    An exec's output is read here (up to the cap; a flood goes to the front to drain) and
    its answer goes to the host, or through the front when the front sent it. A started
    process's output is the front's: the runner holds the output ends until its report."""

    def __init__(
        self, front: _socket.socket, config: dict[str, Any], exec_fd: int, slot_fd: int
    ) -> None:
        super().__init__()
        self.front = front
        self.config = config
        self.exec_fd = exec_fd
        self.slot_fd = slot_fd  # where the front finds our request id if we die mid-command
        self.front_inbox = bytearray()
        self.host_inbox = bytearray()
        self.fds: list[int] = []
        self.command: _Command | None = None
        self.null_fd = os.open(os.devnull, os.O_RDONLY)
        self.wakeup, wakeup_w = os.pipe()
        os.set_blocking(self.wakeup, False)
        os.set_blocking(wakeup_w, False)
        _signal.set_wakeup_fd(wakeup_w)
        _signal.signal(_signal.SIGCHLD, lambda _sig, _frame: None)  # Wakes poll() via the fd.
        self.watch(front.fileno(), POLLIN, self.read_front)
        self.watch(self.wakeup, POLLIN, self.child_exited)
        if exec_fd >= 0:
            os.set_blocking(exec_fd, False)
            self.watch(exec_fd, POLLIN, self.read_host)

    def serve(self) -> None:
        while self.running:
            command = self.command
            timeout_ms = None
            if command and command.deadline and command.status is None:
                timeout_ms = max(0, int((command.deadline - time.monotonic()) * 1000) + 1)
            self.dispatch(timeout_ms)
            command = self.command
            if (
                command
                and command.deadline
                and command.status is None
                and not command.timed_out
                and time.monotonic() >= command.deadline
            ):
                command.timed_out = True
                _kill_tree(command.leader)

    # --- requests -------------------------------------------------------------------------

    def read_front(self, _fd: int) -> None:
        messages = _recv_fds(self.front, self.front_inbox, self.fds)
        if messages is None:  # The front died: end the command, then ourselves.
            self.running = False
            if self.command is not None:
                _kill_tree(self.command.leader)
                self.reap_orphans(self.command)
            return
        for message in messages:
            command = self.command
            if "argv" in message:
                self.run_process(message)
            elif "exec" in message:
                self.run_exec(message["exec"], message["seq"])
            elif command is not None and message.get("kill", -1) in (None, command.seq):
                command.killed = True
                _kill_tree(command.leader)

    def read_host(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # The host closed the exec channel; the front still serves it.
            self.unwatch(fd)
            return
        self.host_inbox += data
        for payload in _take_frames(self.host_inbox):
            request = _loads(payload.decode())
            try:
                if request.get("op") != "exec" or self.command is not None:
                    raise ValueError("the exec channel runs one exec at a time")
                os.pwrite(self.slot_fd, int(request["id"]).to_bytes(8, "big"), 0)
                self.run_exec(request, 0)
            except (OSError, KeyError, ValueError, TypeError) as exc:
                self.send_host({"id": request.get("id"), "type": "error", "message": repr(exc)})

    def run_process(self, spec: dict[str, Any]) -> None:
        """A started process, its stdio made by the front (which reads it)."""
        stdio, self.fds = self.fds[: spec["nfds"]], self.fds[spec["nfds"] :]
        if len(stdio) == 1:
            stdio *= 3
        started = time.monotonic()
        command = self.command = _Command(spec["seq"], _spawn(spec, stdio), started, None)
        # The output ends stay open here until the report is sent: the front then sees the
        # pipes' EOF and the report together.
        command.held = set(stdio[1:])
        for fd in set(stdio) - command.held:
            os.close(fd)
        self.tell_front({"seq": spec["seq"], "pid": command.leader})
        self.maybe_finish()

    def run_exec(self, request: dict[str, Any], seq: int) -> None:
        stdin = binascii.a2b_base64(request["stdin"]) if request.get("stdin") else b""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin else (self.null_fd, -1)
        env, cwd = request.get("env"), request.get("cwd", ".")
        spec = {
            "argv": request["argv"],
            "env": {**self.config["base_env"], **env} if env else self.config["base_env"],
            "cwd": os.path.join(self.config["workspace"], cwd)
            if cwd != "."
            else self.config["workspace"],
        }
        started = time.monotonic()
        leader = _spawn(spec, [in_r, out_w, err_w])
        command = self.command = _Command(seq, leader, started, request.get("timeout_s"))
        for fd in (in_r, out_w, err_w):
            if fd != self.null_fd:
                os.close(fd)
        reply = self.send_host if seq == 0 else self.relay
        stream = bool(request.get("stream"))
        command.capture = Capture(request["id"], stream, self.config["output_bytes"], reply)
        command.pipes = {out_r: "stdout", err_r: "stderr"}
        self.watch(out_r, POLLIN, self.read_output)
        self.watch(err_r, POLLIN, self.read_output)
        if stdin:
            os.set_blocking(in_w, False)
            command.stdin_fd, command.stdin_pending = in_w, stdin
            self.watch(in_w, POLLOUT, self.write_stdin)
        self.maybe_finish()

    # --- the running command --------------------------------------------------------------

    def read_output(self, fd: int) -> None:
        command = self.command
        if command is None or command.capture is None or fd not in command.pipes:
            return
        try:
            data = os.read(fd, READ_BYTES)
        except OSError:
            data = b""
        if data and not command.capture.feed(command.pipes[fd], data):
            return
        self.unwatch(fd)
        del command.pipes[fd]
        if data:  # A flood past the cap: the front reads it to the end, we stop paying for it.
            _send_fds(self.front, {"discard": True}, [fd])
        os.close(fd)
        self.maybe_finish()

    def write_stdin(self, fd: int) -> None:
        command = self.command
        if command is None or fd != command.stdin_fd:
            return
        try:
            written = os.write(fd, command.stdin_pending)
        except BlockingIOError:
            return
        except OSError:  # The command closed its stdin or died: drop the rest.
            written = len(command.stdin_pending)
        command.stdin_pending = command.stdin_pending[written:]
        if not command.stdin_pending:
            self.close_stdin(command)

    def close_stdin(self, command: _Command) -> None:
        if command.stdin_fd >= 0:
            self.unwatch(command.stdin_fd)
            os.close(command.stdin_fd)
            command.stdin_fd = -1

    def child_exited(self, _fd: int) -> None:
        os.read(self.wakeup, 512)  # One byte per signal: this drains it.
        command = self.command
        if command is None or command.status is not None:
            return
        pid, status, usage = os.wait4(command.leader, os.WNOHANG)
        if pid != command.leader:
            return
        command.status = status
        command.add_usage(usage)
        _kill(command.leader, group=True)  # Background jobs still in the command's group.
        self.reap_orphans(command)
        self.maybe_finish()

    def reap_orphans(self, command: _Command) -> None:
        """Kill and reap whatever the command left: every remaining child is its orphan."""
        while True:
            try:
                pid, _, usage = os.wait4(-1, os.WNOHANG)
                if pid == 0:
                    _kill_tree(0)
                    pid, _, usage = os.wait4(-1, 0)
            except ChildProcessError:
                return
            command.add_usage(usage)

    def maybe_finish(self) -> None:
        command = self.command
        if command is None or command.status is None or command.pipes:
            return
        self.command = None
        report = command.report()
        if command.capture is None:  # A started process: the front has its output.
            self.tell_front({"seq": command.seq, **report, "runner_cpu_s": _own_cpu_s()})
            for fd in command.held:
                os.close(fd)
            return
        self.close_stdin(command)
        result = command.capture.result(report, command.started)
        if command.seq:
            self.tell_front({"seq": command.seq, "result": result, "runner_cpu_s": _own_cpu_s()})
            return
        # The slot keeps this (answered) id: the host ignores a late answer for it.
        self.send_host(result)
        limit_s = self.config["rlimits"].get("cpu")
        if limit_s is not None and _own_cpu_s() > limit_s / 2:
            self.unwatch(self.exec_fd)  # Not one more request: the next server reads it.
            self.running = False  # The front starts a fresh exec server once we are gone.

    def send_host(self, message: dict[str, Any]) -> None:
        _write_all(self.exec_fd, _frame(_dumps(message).encode()))

    def relay(self, message: dict[str, Any]) -> None:
        """A chunk of an exec the front sent: it passes it on."""
        if self.command is not None:
            self.tell_front({"seq": self.command.seq, "chunk": message})

    def tell_front(self, message: dict[str, Any]) -> None:
        try:
            self.front.sendall(_frame(marshal.dumps(message)))
        except OSError:  # The front is gone; its EOF ends us at the next poll.
            return


def _runner_main(sock: _socket.socket, config: dict[str, Any], exec_fd: int, slot_fd: int) -> None:
    """In a fresh fork of the front: drop the front's fds, take the limits, serve commands."""
    keep = sorted({sock.fileno(), exec_fd, slot_fd} - {-1})
    low = 3
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)  # The host's pipes are the front's alone: stderr stays for diagnostics.
    os.dup2(null, 1)
    os.close(null)
    for name, value in config["rlimits"].items():
        _set_rlimit(name, value)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _Runner(sock, config, exec_fd, slot_fd).serve()


# --- the front --------------------------------------------------------------------------------


class Runner:
    """The front's handle on one runner process and what it runs for the front."""

    def __init__(self, sock: _socket.socket, pid: int, serves_host: bool) -> None:
        self.sock = sock
        self.pid = pid
        self.fd = sock.fileno()
        self.serves_host = serves_host
        self.inbox = bytearray()
        self.fds: list[int] = []
        self.cpu_s = 0.0
        self.seq = 0  # of what it runs for the front, 0 when idle
        self.job: Job | None = None  # a started process
        self.exec_id = 0  # an exec's request id


class Job:
    """A started process: the front keeps its output (log), followers and stdin."""

    def __init__(self, request: dict[str, Any], process_id: str) -> None:
        self.request_id: int = request["id"]
        self.spec = request
        self.process_id = process_id
        self.started_at = time.time()
        self.runner: Runner | None = None
        self.pid = 0
        self.reply_pending = True  # start is answered once the runner reports the pid
        self.open_fds: set[int] = set()
        self.stdin_fd = -1
        self.stdin_pending = b""
        self.status: dict[str, Any] | None = None
        self.log = bytearray()
        self.log_start = 0
        self.followers: list[int] = []
        self.done = False


class Supervisor(_Loop):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.inbox = bytearray()
        self.processes: dict[str, Job] = {}  # by process id
        self.next_process = 1
        self.seq = 0
        self.runners: dict[int, Runner] = {}  # by socket fd
        self.idle: list[Runner] = []
        self.retired: list[int] = []  # runner pids to reap
        self.exec_fd = int(config.get("exec_fd", -1))
        self.slot_fd = -1
        if self.exec_fd >= 0:
            os.set_inheritable(self.exec_fd, False)  # Never a command's: only exec servers'.
            os.set_blocking(self.exec_fd, False)
            self.slot_fd = os.memfd_create("vibecode-exec-slot")
            os.write(self.slot_fd, bytes(8))
        self.want_spare = self.exec_fd < 0  # Without an exec server, runners run every exec.

    # --- event loop -----------------------------------------------------------------------

    def serve(self) -> None:
        os.set_blocking(0, False)
        self.watch(0, POLLIN, self.read_host)
        # The exec server is forked once the host's first ping is answered (it waits in the
        # pipe by then): commands the host sends meanwhile wait in the exec channel.
        want_server = self.exec_fd >= 0
        while self.running:
            if not self.dispatch(0 if self.want_spare or want_server else None):
                if want_server:  # Idle: the moment for work off the command path.
                    want_server = False
                    self.new_runner(serves_host=True)
                elif self.want_spare:
                    self.want_spare = False
                    if not self.idle:
                        self.idle.append(self.new_runner())
            if self.retired:
                self.reap_retired()

    def send(self, message: dict[str, Any]) -> None:
        _write_all(1, _frame(_dumps(message).encode()))

    def read_host(self, _fd: int) -> None:
        try:
            chunk = os.read(0, READ_BYTES)
        except BlockingIOError:
            return
        if not chunk:
            self.running = False
            return
        self.inbox += chunk
        for payload in _take_frames(self.inbox):
            request = _loads(payload.decode())
            try:
                getattr(self, "op_" + request["op"])(request)
            except (OSError, KeyError, ValueError, TypeError) as exc:
                self.send({"id": request.get("id"), "type": "error", "message": repr(exc)})

    # --- runners --------------------------------------------------------------------------

    def new_runner(self, *, serves_host: bool = False) -> Runner:
        front_end, runner_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                exec_fd = self.exec_fd if serves_host else -1
                _runner_main(runner_end, self.config, exec_fd, self.slot_fd)
            finally:
                os._exit(0)
        runner_end.close()
        runner = Runner(front_end, pid, serves_host)
        self.runners[runner.fd] = runner
        self.watch(runner.fd, POLLIN, self.read_runner)
        return runner

    def take_runner(self, start: bool) -> Runner:
        runner = self.idle.pop() if self.idle else self.new_runner()
        self.seq += 1
        runner.seq = self.seq
        if start and not self.idle:
            self.want_spare = True  # A process may hold this runner for long.
        return runner

    def release_runner(self, runner: Runner) -> None:
        runner.seq, runner.job, runner.exec_id = 0, None, 0
        cpu_limit_s = self.config["rlimits"].get("cpu")
        worn = cpu_limit_s is not None and runner.cpu_s > cpu_limit_s / 2
        if worn or len(self.idle) >= MAX_IDLE_RUNNERS:
            self.drop_runner(runner)
            self.retired.append(runner.pid)  # It exits on EOF; reaped later.
        else:
            self.idle.append(runner)

    def drop_runner(self, runner: Runner) -> None:
        self.unwatch(runner.fd)
        del self.runners[runner.fd]
        if runner in self.idle:
            self.idle.remove(runner)
        runner.sock.close()

    def reap_retired(self) -> None:
        for pid in list(self.retired):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            except ChildProcessError:
                pass
            self.retired.remove(pid)

    def read_runner(self, fd: int) -> None:
        runner = self.runners[fd]
        messages = _recv_fds(runner.sock, runner.inbox, runner.fds)
        if messages is None:
            self.runner_gone(runner)
            return
        for message in messages:
            if "discard" in message:  # An exec's flood: drain it to its end.
                self.discard(runner.fds.pop(0))
            elif not runner.seq or message.get("seq") != runner.seq:
                continue
            elif "chunk" in message:
                self.send(message["chunk"])
            elif "result" in message:
                runner.cpu_s = message["runner_cpu_s"]
                self.send(message["result"])
                self.release_runner(runner)
            elif "pid" in message and runner.job is not None:
                runner.job.pid = message["pid"]
                self.reply_started(runner.job)
            elif runner.job is not None:
                runner.cpu_s = message.pop("runner_cpu_s")
                job, job.status = runner.job, message
                self.release_runner(runner)
                self.maybe_finish(job)

    def discard(self, fd: int) -> None:
        def drain(_fd: int) -> None:
            try:
                if os.read(fd, READ_BYTES):
                    return
            except OSError:
                pass
            self.unwatch(fd)
            os.close(fd)

        self.watch(fd, POLLIN, drain)

    def runner_gone(self, runner: Runner) -> None:
        """A runner exited: retired, or killed by user code (what it ran counts as killed)."""
        self.drop_runner(runner)
        os.waitpid(runner.pid, 0)
        spare = {r.pid for r in self.runners.values()} | set(self.retired)
        for _ in range(100):  # Orphans re-parent to us (a subreaper): kill and reap them.
            orphans = [pid for pid in _children() if pid not in spare]
            if not orphans:
                break
            for pid in orphans:
                _kill(pid)
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    continue
        killed = {"exit_code": -9, "killed": True, "timed_out": False}
        if runner.serves_host:
            request_id = int.from_bytes(os.pread(self.slot_fd, 8, 0), "big")
            os.pwrite(self.slot_fd, bytes(8), 0)
            if self.running:
                self.new_runner(serves_host=True)
            if request_id:  # Its exec, if unanswered (the host ignores a second answer).
                result = Capture(request_id, False, 0, self.send).result(killed, 0.0)
                with _IgnoreClosed():
                    _write_all(self.exec_fd, _frame(_dumps(result).encode()))
        if runner.exec_id:
            self.send(Capture(runner.exec_id, False, 0, self.send).result(killed, 0.0))
        job = runner.job
        if job is not None and job.status is None:
            job.status = killed
            self.reply_started(job)
            self.maybe_finish(job)

    # --- started processes ----------------------------------------------------------------

    def spawn(self, request: dict[str, Any], job: Job) -> None:
        if request.get("pty"):
            import fcntl
            import struct
            import termios

            master, slave = os.openpty()
            size = struct.pack("HHHH", request.get("rows", 24), request.get("cols", 80), 0, 0)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
            stdio = [slave]
            outputs = [master]
            job.stdin_fd = os.dup(master)  # Its own fd, so the poller can watch both ways.
        else:
            out_r, out_w = os.pipe()
            in_r, job.stdin_fd = os.pipe()
            stdio = [in_r, out_w, out_w]
            outputs = [out_r]
        runner = self.take_runner(start=True)
        spec = {
            "seq": runner.seq,
            "argv": request["argv"],
            "env": {**self.config["base_env"], **request.get("env", {})},
            "cwd": os.path.join(self.config["workspace"], request.get("cwd", ".")),
            "pty": bool(request.get("pty")),
            "nfds": len(set(stdio)) if request.get("pty") else 3,
        }
        try:
            _send_fds(runner.sock, spec, stdio[:1] if request.get("pty") else stdio)
        except OSError:  # A dead runner: it is dropped when its socket reports the hangup.
            runner.seq = 0
            for fd in {*stdio, *outputs, job.stdin_fd}:
                os.close(fd)
            raise
        runner.job, job.runner = job, runner
        for fd in set(stdio):
            os.close(fd)
        for fd in outputs:
            job.open_fds.add(fd)
            self.watch(fd, POLLIN, self.output_reader(job))

    def queue_stdin(self, job: Job, data: bytes) -> None:
        if job.stdin_fd < 0:
            return
        was_empty = not job.stdin_pending
        job.stdin_pending += data
        if was_empty:
            os.set_blocking(job.stdin_fd, False)
            self.watch(job.stdin_fd, POLLOUT, lambda _fd: self.write_stdin(job))

    def write_stdin(self, job: Job) -> None:
        try:
            written = os.write(job.stdin_fd, job.stdin_pending)
        except BlockingIOError:
            return
        except OSError:  # The process closed its stdin or died: drop the rest.
            written = len(job.stdin_pending)
        job.stdin_pending = job.stdin_pending[written:]
        if not job.stdin_pending:
            self.unwatch(job.stdin_fd)

    def output_reader(self, job: Job) -> Callable[[int], None]:
        return lambda fd: self.read_output(job, fd)

    def read_output(self, job: Job, fd: int) -> None:
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:  # A pty whose last slave closed answers EIO: that is EOF.
            data = b""
        if not data:
            self.unwatch(fd)
            os.close(fd)
            job.open_fds.discard(fd)
            self.maybe_finish(job)
            return
        start = job.log_start + len(job.log)
        job.log.extend(data)
        excess = len(job.log) - self.config["log_bytes"]
        if excess > 0:
            del job.log[:excess]
            job.log_start += excess
        chunk = {"type": "chunk", "stream": "stdout", "offset": start, "data": _b64(data)}
        for follower in job.followers:
            self.send({"id": follower, **chunk})

    def maybe_finish(self, job: Job) -> None:
        if job.open_fds or job.status is None or job.done:
            return
        job.done = True
        if job.stdin_fd >= 0:
            if job.stdin_pending:
                self.unwatch(job.stdin_fd)
            os.close(job.stdin_fd)
            job.stdin_fd = -1
        for follower in job.followers:
            self.send({"id": follower, "type": "result", "exit_code": job.status["exit_code"]})
        job.followers.clear()

    # --- operations ---------------------------------------------------------------------------

    def op_ping(self, request: dict[str, Any]) -> None:
        running = sum(1 for job in self.processes.values() if not job.done)
        self.send({"id": request["id"], "type": "result", "pid": os.getpid(), "running": running})

    def op_exec(self, request: dict[str, Any]) -> None:
        """An exec that did not come through the exec channel: a runner runs it and its
        answers pass through here."""
        runner = self.take_runner(start=False)
        runner.exec_id = request["id"]
        try:
            _send_fds(runner.sock, {"exec": request, "seq": runner.seq}, [])
        except OSError:  # A dead runner: it is dropped when its socket reports the hangup.
            runner.seq, runner.exec_id = 0, 0
            raise

    def op_start(self, request: dict[str, Any]) -> None:
        job = Job(request, f"p{self.next_process}")
        self.next_process += 1
        self.processes[job.process_id] = job
        try:
            self.spawn(request, job)
        except BaseException:
            del self.processes[job.process_id]
            raise

    def reply_started(self, job: Job) -> None:
        if job.reply_pending:
            job.reply_pending = False
            self.send({"id": job.request_id, "type": "result", **self.describe(job)})

    def describe(self, job: Job) -> dict[str, Any]:
        return {
            "process_id": job.process_id,
            "pid": job.pid,
            "argv": job.spec["argv"],
            "pty": bool(job.spec.get("pty")),
            "running": not job.done,
            "exit_code": job.status["exit_code"] if job.done and job.status else None,
            "started_at": job.started_at,
        }

    def find(self, request: dict[str, Any]) -> Job | None:
        job = self.processes.get(request["process_id"])
        if job is None:
            self.send(
                {
                    "id": request["id"],
                    "type": "error",
                    "message": "no such process",
                    "code": "process_not_found",
                }
            )
        return job

    def op_list(self, request: dict[str, Any]) -> None:
        listing = [self.describe(job) for job in self.processes.values()]
        self.send({"id": request["id"], "type": "result", "processes": listing})

    def op_logs(self, request: dict[str, Any]) -> None:
        job = self.find(request)
        if job is None:
            return
        offset = max(int(request.get("offset", 0)), job.log_start)
        data = bytes(job.log[offset - job.log_start :])
        self.send(
            {
                "id": request["id"],
                "type": "result",
                "data": _b64(data),
                "offset": offset,
                "next_offset": offset + len(data),
                "running": not job.done,
                "exit_code": job.status["exit_code"] if job.done and job.status else None,
            }
        )

    def op_follow(self, request: dict[str, Any]) -> None:
        job = self.find(request)
        if job is None:
            return
        offset = max(int(request.get("offset", 0)), job.log_start)
        backlog = bytes(job.log[offset - job.log_start :])
        if backlog:
            self.send(
                {
                    "id": request["id"],
                    "type": "chunk",
                    "stream": "stdout",
                    "offset": offset,
                    "data": _b64(backlog),
                }
            )
        if job.done:
            self.send(
                {
                    "id": request["id"],
                    "type": "result",
                    "exit_code": job.status["exit_code"] if job.status else None,
                }
            )
        else:
            job.followers.append(request["id"])

    def op_input(self, request: dict[str, Any]) -> None:
        job = self.find(request)
        if job is None:
            return
        self.queue_stdin(job, binascii.a2b_base64(request["data"]))
        self.send({"id": request["id"], "type": "result"})

    def op_resize(self, request: dict[str, Any]) -> None:
        job = self.find(request)
        if job is None:
            return
        if job.spec.get("pty") and job.stdin_fd >= 0:
            import fcntl
            import struct
            import termios

            size = struct.pack("HHHH", request["rows"], request["cols"], 0, 0)
            fcntl.ioctl(job.stdin_fd, termios.TIOCSWINSZ, size)
        self.send({"id": request["id"], "type": "result"})

    def op_kill(self, request: dict[str, Any]) -> None:
        job = self.find(request)
        if job is None:
            return
        alive = not job.done and job.status is None
        if alive:
            self.kill_job(job)
        self.send({"id": request["id"], "type": "result", "killed": alive})

    def kill_job(self, job: Job) -> None:
        runner = job.runner
        if runner is not None and runner.job is job:
            _send_fds(runner.sock, {"kill": runner.seq}, [])

    def op_reset(self, request: dict[str, Any]) -> None:
        """Kill every process in the sandbox but pid 1, us and our runners, then wipe the
        scratch dirs. Outside a pid namespace of its own (the fake backend) it kills only
        the commands its runners run."""
        for runner in self.runners.values():
            if runner.serves_host or runner.seq:  # The exec server: whatever it runs.
                _send_fds(runner.sock, {"kill": None if runner.serves_host else runner.seq}, [])
        if self.config["own_pid_namespace"]:
            self.kill_everything()
        self.processes.clear()
        failures = 0
        if not request.get("keep_scratch"):
            import shutil

            for directory in self.config["wipe_dirs"]:
                for name in os.listdir(directory):
                    path = os.path.join(directory, name)
                    try:
                        if os.path.isdir(path) and not os.path.islink(path):
                            shutil.rmtree(path)
                        else:
                            os.unlink(path)
                    except OSError:
                        failures += 1
        self.send({"id": request["id"], "type": "result", "wipe_failures": failures})

    def kill_everything(self) -> None:
        ours = {1, os.getpid(), *(r.pid for r in self.runners.values()), *self.retired}
        for _ in range(500):
            others = [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) not in ours]
            live = [pid for pid in others if not _is_zombie(pid)]
            if not live:
                break
            for pid in live:
                _kill(pid)
            time.sleep(0.002)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def main() -> None:
    config = _loads(sys.argv[1])
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # A killed runner's orphans come here, to be killed.
    _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    Supervisor(config).serve()


if __name__ == "__main__":
    main()
