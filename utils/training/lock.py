"""One training per checkpoint: a lock file beside it, holding the PID of the run that writes it.

The lock is an advisory lock (fcntl.flock) on <checkpoint>.lock: the kernel drops it when its process dies, so a
lock left by a killed run is stale by construction and the next run simply takes it. The PID inside is for the
message. Where fcntl is missing (Windows) the PID alone decides: a lock whose process is gone is stale."""
import atexit
import os
from pathlib import Path

from utils.errors import UserError
from utils.training.checkpoint import cannot_write, pid_alive

try:
    import fcntl
except ImportError:   # Windows
    fcntl = None


HELD = {}   # lock file -> the TrainingLock this process holds on it


def lock_path_for(checkpoint):
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".lock")


class TrainingLock:
    """Held while a training writes `checkpoint` and its resume file; a second one on the same checkpoint refuses
    in one line."""

    def __init__(self, checkpoint):
        self.checkpoint, self.path, self.fd = Path(checkpoint), lock_path_for(checkpoint), None

    def refuse(self, pid):
        raise UserError(f"another training (PID {pid or '?'}) is writing {self.checkpoint}: wait for it to finish, "
                        f"or pass another --checkpoint")

    def acquire(self):
        """Take the lock (this process may already hold it: a script called twice from Python) and keep it until
        the process exits, so that what follows training (a VAE's second stage) is covered too."""
        key = os.path.abspath(self.path)
        if key in HELD:
            return HELD[key]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.acquire_by_pid() if fcntl is None else self.acquire_by_flock()
        except OSError as e:
            raise UserError(cannot_write(self.path, e)) from None
        HELD[key] = self
        atexit.register(self.release)
        return self

    def acquire_by_flock(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                self.refuse(pid)
            # The holder before us may have deleted the file between our open and our lock: lock the file that is
            # there now.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def acquire_by_pid(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = self.path.read_text().strip()
                if pid.isdigit() and pid_alive(int(pid)):
                    self.refuse(pid)
                self.path.unlink(missing_ok=True)   # stale: its process is gone
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            return
        self.refuse(None)

    def release(self):
        if self.fd is None:
            return
        # Deleted while still locked, so that a run waiting to open it finds the file gone and opens a fresh one
        # (Windows deletes no open file: closed first there).
        if fcntl is None:
            os.close(self.fd)
        self.path.unlink(missing_ok=True)
        if fcntl is not None:
            os.close(self.fd)
        self.fd = None
        HELD.pop(os.path.abspath(self.path), None)
