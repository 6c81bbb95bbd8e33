"""Warm start: the workflow's short jobs forked from a process that has already imported torch.

A workflow run starts a Python process per job, and importing torch (and timm, for the frame
classifier's jobs) costs each of them 1.5-3 s of CPU: on the demo's 144 jobs, about as much as their
work. With `DDLSTM_WARM_START=1` (the workflow sets it for jobs it runs on its own machine), `ddlstm
<step>` asks a server on this machine to fork a process that has those libraries loaded and to run the
step there, with this process's arguments, working directory, environment, standard streams and
thread count; it waits for it, passes on SIGINT, SIGTERM and SIGHUP, and exits with its status. If the
child loses its client it is killed, so a cancelled job leaves nothing running.

The server is started by the first client that finds none (that client runs its step itself), one per
user, Python and package location, and exits after `DDLSTM_WARM_IDLE` seconds (30) without a job. It
imports third-party libraries only: the package's own modules are imported fresh by every child, so
an edit to the code is seen by the next job. Anything unusual (no server yet, no thread count in the
environment, a server that does not answer) runs the step in the client's own process, as without
warm start: a warm start changes when a job's process starts, never what it computes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SWITCH = "DDLSTM_WARM_START"
IDLE = "DDLSTM_WARM_IDLE"
PRELOAD = ("numpy", "torch", "h5py", "timm", "pandas")  # what the steps import that takes long
_INT = struct.Struct("!i")


def enabled() -> bool:
    return os.environ.get(SWITCH, "") not in ("", "0")


def socket_path() -> str:
    """The server's socket: one per user, Python and package location (a server's children must import
    the same package the client would)."""
    package = os.path.dirname(os.path.abspath(__file__))
    key = "\0".join((str(os.getuid()), sys.executable, package))
    # a short name: a UNIX socket's path has at most ~107 bytes
    return os.path.join(tempfile.gettempdir(), f"ddlstm-warm-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock")


# -- the client ------------------------------------------------------------------------------------

def _receive_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def run(argv: list[str]) -> int | None:
    """Run `ddlstm <argv>` in a forked child of the server and return its exit status; None where it
    was not run there (the caller runs the step itself)."""
    if not os.environ.get("OMP_NUM_THREADS", "").isdigit():  # a cold process would choose its own thread count
        return None
    path = socket_path()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError:
        conn.close()
        start_server(path)
        return None
    with conn:
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                              "path": sys.path}).encode()
        try:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            socket.send_fds(conn, [_INT.pack(len(request))], [0, 1, 2])
            conn.sendall(request)
            started = _receive_exactly(conn, _INT.size)
        except OSError:
            started = None
        if started is None:  # the server went away before forking: nothing ran
            return None
        (pid,) = _INT.unpack(started)

        def forward(signum, _frame):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        while True:
            try:
                status = _receive_exactly(conn, _INT.size)
                break
            except InterruptedError:
                continue
    if status is None:
        print(f"error: the step's process ({pid}, forked by the warm-start server) ended without an exit "
              f"status: killed, or it crashed (run with {SWITCH}=0 to run it in this process)", file=sys.stderr)
        return 1
    return _INT.unpack(status)[0]


def start_server(path: str) -> None:
    """Start a server in the background, detached from this job (it outlives it)."""
    try:
        with open(path + ".log", "ab") as log:
            # the client's package, wherever it came from (sys.path may differ between working directories)
            parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            code = f"import sys; sys.path.insert(0, {parent!r}); from pipeline.warmstart import serve; serve({path!r})"
            subprocess.Popen([sys.executable, "-c", code], cwd=parent, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, close_fds=True)
    except OSError:
        pass  # no server: every job runs cold, as without warm start


# -- the server ------------------------------------------------------------------------------------

def _serve_child(conn: socket.socket, listener: socket.socket, fds: list[int], request: dict) -> None:
    """In the forked child: become the client's process, run the step, report its status, exit."""
    listener.close()
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(SWITCH, None)  # the step runs here; were it to call ddlstm itself, that would run cold
    sys.path[:] = request["path"]
    sys.argv = [sys.argv[0], *request["argv"]]
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    conn.sendall(_INT.pack(os.getpid()))

    import threading

    def orphaned():  # the client is gone (its job cancelled): so is this process
        try:
            conn.recv(1)
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=orphaned, daemon=True).start()
    import torch

    torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
    from .__main__ import main

    try:
        status = main(request["argv"])
    except SystemExit as error:
        status = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
    except BaseException:  # noqa: BLE001  main catches what a step raises; the rest, as Python would report it
        import traceback

        traceback.print_exc()
        status = 1
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    status = int(status or 0)
    try:
        conn.sendall(_INT.pack(status))
    finally:
        os._exit(status)


def serve(path: str) -> None:
    idle = float(os.environ.get(IDLE, "30"))
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one server binds; another started meanwhile finds it and leaves
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return
        except OSError:
            pass
        finally:
            probe.close()
        for module in PRELOAD:
            try:
                __import__(module)
            except ImportError:
                pass
        if os.path.exists(path):
            os.unlink(path)  # a server that died without removing it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(64)
    identity = os.stat(path).st_ino
    listener.settimeout(1.0)
    children: set[int] = set()
    last = time.monotonic()
    try:
        while True:
            for pid in list(children):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    children.discard(pid)
            try:
                if os.stat(path).st_ino != identity:
                    return  # replaced or removed: another server's, or nobody's
            except FileNotFoundError:
                return
            if not children and time.monotonic() - last > idle:
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            last = time.monotonic()
            with conn:
                conn.settimeout(10)
                try:
                    header, fds, _, _ = socket.recv_fds(conn, _INT.size, 3)
                    size = _INT.unpack(header)[0] if len(header) == _INT.size and len(fds) == 3 else None
                    request = json.loads(_receive_exactly(conn, size)) if size is not None else None
                except (OSError, ValueError):
                    continue
                if request is None:
                    for fd in fds:
                        os.close(fd)
                    continue
                conn.settimeout(None)
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                pid = os.fork()
                if pid == 0:
                    try:
                        _serve_child(conn, listener, fds, request)
                    finally:
                        os._exit(1)
                for fd in fds:
                    os.close(fd)
                children.add(pid)
    finally:
        try:
            if os.stat(path).st_ino == identity:
                os.unlink(path)
        except FileNotFoundError:
            pass
