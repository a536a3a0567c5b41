"""Locks that processes sharing a folder take before they write there: the data caches (datasets,
wheels, tokenizers) and a run's workdir.

A lock is a file beside what it guards, created atomically, that names its holder: host, process
id, since when, the command. `cache_lock(path, what)` waits for a live holder (the folder is
being built: use it once built); `acquire(path, what=..., wait=False)` raises `LockHeldError`
instead (a workdir in use). A stale lock is taken over with a warning: its holder's process is
gone (known only on the holder's own host), or, where that cannot be known (another host), the
lock has not been refreshed for `stale_after` seconds: a holder refreshes its lock's time every
`HEARTBEAT_SECONDS` while it holds it.

Why a lock file rather than `fcntl.flock`: the caches and workdirs may sit on NFS, shared by
the hosts of a pod. flock there is emulated with byte-range locks (Linux ≥ 2.6.12) or not at
all, depends on the lock daemons of client and server, and is lost when the server restarts;
and it records no holder to name in an error. Creating a file that must not exist is atomic on
every filesystem: the lock's text is written to a unique temporary file first and hard-linked
to the lock's name (link(2) fails if the name exists, also on NFS, and the lock never appears
without its text; open(2)'s manual recommends it over `O_CREAT | O_EXCL`, which NFS v2 lacks),
with `os.open(O_CREAT | O_EXCL)` where the filesystem has no hard links. A holder killed
outright leaves its file behind, hence the staleness rules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import logging
import os
import pathlib
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator

__all__ = [
  "HEARTBEAT_SECONDS",
  "STALE_AFTER_SECONDS",
  "Holder",
  "Lock",
  "LockHeldError",
  "acquire",
  "cache_lock",
  "duration",
]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0  # how often a holder refreshes its lock file's time
# A lock whose holder cannot be checked (another host) and that has not been refreshed for this
# long is stale: generous against clock skew between NFS clients and server and a holder paused
# for a while (a busy host, a suspended job), short against a crashed host blocking every run.
STALE_AFTER_SECONDS = 15 * 60.0
_UNREADABLE_GRACE = 60.0  # an unreadable lock older than this was left by a crash, not mid-write
_TAKEOVER_GRACE = 60.0  # a takeover's own guard file older than this was left by a crash
_POLL_SECONDS = (0.05, 1.0)  # the first and longest waits between tries
_WAIT_LOG_SECONDS = 300.0  # how often a waiting process says again whom it waits for


def _read_text(path: str) -> str | None:
  try:
    return pathlib.Path(path).read_text().strip()
  except OSError:
    return None


def _start_time(pid: int) -> str | None:
  """The start time of process `pid` (clock ticks since boot, Linux); None where unknown."""
  stat = _read_text(f"/proc/{pid}/stat")
  # The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
  return stat.rsplit(")", 1)[-1].split()[19] if stat else None


def _pid_namespace() -> str | None:
  try:
    return os.readlink("/proc/self/ns/pid")
  except OSError:
    return None


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds a lock. `boot`, `pid_namespace` and `start` tell, on the holder's host, whether
  its process is still the one that took the lock (process ids are reused)."""

  host: str
  pid: int
  since: float  # seconds since the epoch
  command: str
  token: str  # unique to one acquisition
  boot: str | None = None  # /proc/sys/kernel/random/boot_id
  pid_namespace: str | None = None  # containers on one host may share a host name
  start: str | None = None  # the process's start time, field 22 of /proc/PID/stat

  @classmethod
  def current(cls) -> Holder:
    """This process, now."""
    command = shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return cls(
      host=socket.gethostname(),
      pid=os.getpid(),
      since=time.time(),
      command=command if len(command) <= 500 else command[:497] + "...",
      token=uuid.uuid4().hex,
      boot=_read_text("/proc/sys/kernel/random/boot_id"),
      pid_namespace=_pid_namespace(),
      start=_start_time(os.getpid()),
    )

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

  @classmethod
  def from_json(cls, text: str) -> Holder | None:
    """The holder a lock file's text names; None if the text is not one."""
    try:
      fields = json.loads(text)
      return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})
    except (ValueError, TypeError):
      return None

  @property
  def on_this_host(self) -> bool:
    """Whether this process can tell if the holder's process lives (same host and process ids)."""
    here = Holder.current()
    return (self.host, self.pid_namespace) == (here.host, here.pid_namespace)

  def alive(self) -> bool | None:
    """Whether the holder's process still runs; None where that cannot be known (another host,
    another container)."""
    if not self.on_this_host or sys.platform == "win32":  # there, os.kill(pid, 0) would kill
      return None
    boot = _read_text("/proc/sys/kernel/random/boot_id")
    if self.boot and boot and self.boot != boot:
      return False  # the host restarted since
    try:
      os.kill(self.pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      pass  # it exists, under another user
    start = _start_time(self.pid)
    return not (self.start and start and start != self.start)  # else the id was reused

  def describe(self) -> str:
    """For messages: process 4242 on host h since 2025-06-01 12:00:00 UTC (3 min ago), running …"""
    since = datetime.datetime.fromtimestamp(self.since).astimezone()
    text = (
      f"process {self.pid} on host {self.host} since {since:%Y-%m-%d %H:%M:%S %Z} "
      f"({duration(time.time() - self.since)} ago)"
    )
    return text + (f", running `{self.command}`" if self.command else "")


def duration(seconds: float) -> str:
  """`seconds` for a message: "42 s", "12 min", "3.5 h"."""
  seconds = max(seconds, 0.0)
  if seconds < 120:
    return f"{seconds:.0f} s"
  if seconds < 7200:
    return f"{seconds / 60:.0f} min"
  return f"{seconds / 3600:.1f} h"


class LockHeldError(RuntimeError):
  """The lock is held by a live process (or one that cannot be checked)."""

  def __init__(self, path: pathlib.Path, holder: Holder | None, age: float):
    self.path, self.holder, self.age = path, holder, age
    who = holder.describe() if holder else "an unknown process (its lock file is unreadable)"
    super().__init__(f"The lock {path} is held by {who}; last refreshed {duration(age)} ago.")


@dataclasses.dataclass(frozen=True)
class _Seen:
  """A lock file as read: its holder (None if unreadable), age and identity."""

  holder: Holder | None
  age: float  # seconds since its holder last refreshed it
  key: tuple  # the same file, unchanged: (device, inode, token)


def _read(path: pathlib.Path) -> _Seen:
  """Raises FileNotFoundError if there is no lock."""
  for _ in range(20):  # a lock made with O_EXCL may be read before its text is written
    stat = path.stat()
    holder = Holder.from_json(_read_text(os.fspath(path)) or "")
    age = time.time() - stat.st_mtime
    if holder is not None or age > 1.0:
      break
    time.sleep(0.05)
  return _Seen(holder, age, (stat.st_dev, stat.st_ino, holder and holder.token))


def _create(path: pathlib.Path, text: str) -> bool:
  """Creates `path` holding `text` if no file has that name; whether it did."""
  temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
  temporary.write_text(text)
  try:
    os.link(temporary, path)
    return True
  except FileExistsError:
    # NFS: the reply to a link that succeeded can be lost and its retry fail (open(2)).
    return os.stat(temporary).st_nlink == 2
  except OSError as error:
    if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
      raise
  finally:
    temporary.unlink(missing_ok=True)
  # No hard links on this filesystem.
  try:
    handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(handle, "w") as f:
    f.write(text)
  return True


def _stale(seen: _Seen, stale_after: float | None) -> str | None:
  """Why the lock `seen` is stale, or None if it is not."""
  if seen.holder is None:
    return "its file is unreadable" if seen.age > _UNREADABLE_GRACE else None
  alive = seen.holder.alive()
  if alive is False:
    return "that process is gone"
  if alive is None and stale_after is not None and seen.age > stale_after:
    return f"its host has not refreshed it for {duration(seen.age)}"
  return None


def _take_over(path: pathlib.Path, seen: _Seen, reason: str, what: str) -> None:
  """Removes the stale lock `seen` unless another process got there first.

  A guard file makes the check and the removal one step: without it, a process could remove the
  lock that another one has just taken over.
  """
  guard = path.with_name(path.name + ".takeover")
  if not _create(guard, Holder.current().to_json()):
    with contextlib.suppress(FileNotFoundError):
      if time.time() - guard.stat().st_mtime > _TAKEOVER_GRACE:
        guard.unlink(missing_ok=True)
    return
  try:
    try:
      if _read(path).key != seen.key:
        return  # removed or taken over meanwhile
    except FileNotFoundError:
      return
    who = seen.holder.describe() if seen.holder else "an unknown process"
    log.warning(
      "Taking over the stale lock %s of %s: it was held by %s; %s.", path, what, who, reason
    )
    path.unlink(missing_ok=True)
  finally:
    guard.unlink(missing_ok=True)


class Lock:
  """A held lock; `release()` (or leaving its `with` block) removes its file."""

  def __init__(self, path: pathlib.Path, holder: Holder):
    self.path, self.holder = path, holder
    self._stop = threading.Event()
    self._heartbeat = threading.Thread(target=self._beat, name=f"lock {path}", daemon=True)
    self._heartbeat.start()

  def _beat(self) -> None:
    while not self._stop.wait(HEARTBEAT_SECONDS):
      try:
        os.utime(self.path)
      except OSError:
        return

  def release(self) -> None:
    """Removes the lock file if it is still this holder's (idempotent)."""
    if self._stop.is_set():
      return
    self._stop.set()
    self._heartbeat.join()
    try:
      seen = _read(self.path)
    except FileNotFoundError:
      log.warning("The lock %s was removed while this process held it.", self.path)
      return
    if seen.holder is not None and seen.holder.token == self.holder.token:
      self.path.unlink(missing_ok=True)
    else:
      who = seen.holder.describe() if seen.holder else "an unknown process"
      log.warning("The lock %s was taken over by %s while this process held it.", self.path, who)

  def __enter__(self) -> Lock:
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()


def acquire(
  path: str | os.PathLike,
  *,
  what: str,
  wait: bool = True,
  stale_after: float | None = STALE_AFTER_SECONDS,
) -> Lock:
  """Takes the lock file `path` (its folder created if needed).

  Args:
    path: the lock file.
    what: what it guards, for the log ("the dataset wikitext2").
    wait: wait while a live holder holds it; else raise `LockHeldError` at once.
    stale_after: seconds without a refresh after which the lock of a holder that cannot be
      checked (another host) is stale; None: never.

  Raises:
    LockHeldError: `wait` is False and the lock is held and not stale.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  mine = Holder.current()
  pause, logged = _POLL_SECONDS[0], None
  while True:
    if _create(path, mine.to_json()):
      return Lock(path, mine)
    try:
      seen = _read(path)
    except FileNotFoundError:
      continue  # released meanwhile
    if reason := _stale(seen, stale_after):
      _take_over(path, seen, reason, what)
      continue
    if not wait:
      raise LockHeldError(path, seen.holder, seen.age)
    if logged is None or time.monotonic() - logged > _WAIT_LOG_SECONDS:
      who = seen.holder.describe() if seen.holder else "an unknown process"
      log.warning("Waiting for %s, which holds the lock %s of %s.", who, path, what)
      logged = time.monotonic()
    time.sleep(pause)
    pause = min(2 * pause, _POLL_SECONDS[1])


@contextlib.contextmanager
def cache_lock(path: str | os.PathLike, what: str) -> Iterator[Lock]:
  """Holds the lock file `path` while a cache entry is built, waiting for another builder.

  Check again inside the block whether the entry exists: the process waited for may have
  built it.
  """
  with acquire(path, what=what, wait=True) as lock:
    yield lock
