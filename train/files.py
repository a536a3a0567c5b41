"""Files a run writes and reads outside orbax: written whole or not at all, read with errors
that name the path.

A write goes to a temporary file in the same folder, then `os.replace` renames it over the
target: a crash mid-write leaves the old file (or none), never a truncated one. The file gets
the mode a plain `open()` would give it (0666 less the umask), so that other users of a shared
filesystem can read what a run writes, as they read its TensorBoard files.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """A temporary path beside `path` to write to; renamed to `path` if the block succeeds."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # The same suffix, for writers that choose the format by it (matplotlib, numpy). Not
  # `tempfile.mkstemp`, which creates the file 0600 whatever the umask.
  temporary = path.parent / f".{path.stem}.{secrets.token_hex(6)}{path.suffix}"
  os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
  try:
    yield pathlib.Path(temporary)
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes `text` to `path` atomically."""
  with atomic_path(path) as temporary:
    temporary.write_text(text)


def write_json(path: str | os.PathLike, value) -> None:
  """Writes `value` as indented JSON to `path` atomically."""
  write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str))


def read_json(path: str | os.PathLike, what: str = "file"):
  """The JSON in `path`; an unreadable or truncated file raises a `ValueError` naming it."""
  try:
    return json.loads(pathlib.Path(path).read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
    raise ValueError(
      f"The {what} {path} cannot be read ({error}). Restore it, or remove it and rerun."
    ) from error
