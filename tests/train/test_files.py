"""`train.files`: files written whole or not at all, and read with errors that name the path.

The crash mid-write (the old file stays whole) is a fault of the faults suite,
tests/e2e/test_faults.py.
"""

import json
import os
import stat

import pytest

from train import files


def test_json_and_text_are_written_whole_into_new_folders(tmp_path):
  path = tmp_path / "a" / "b" / "summary.json"
  files.write_json(path, {"step": 3, "path": tmp_path})  # str() for what json lacks
  assert files.read_json(path) == {"step": 3, "path": str(tmp_path)}
  assert path.read_text() == json.dumps({"path": str(tmp_path), "step": 3}, indent=2)
  files.write_text(path.with_name("report.md"), "# Report\n")
  assert (path.parent / "report.md").read_text() == "# Report\n"
  assert sorted(p.name for p in path.parent.iterdir()) == ["report.md", "summary.json"]


def test_the_temporary_file_keeps_the_suffix_and_goes_when_the_block_fails(tmp_path):
  with files.atomic_path(tmp_path / "maps.npz") as temporary:
    assert temporary.parent == tmp_path and temporary.suffix == ".npz"
    temporary.write_bytes(b"arrays")
  assert (tmp_path / "maps.npz").read_bytes() == b"arrays"
  with pytest.raises(RuntimeError, match="plot failed"), files.atomic_path(tmp_path / "x.png") as t:
    t.write_bytes(b"half")
    raise RuntimeError("plot failed")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["maps.npz"]


@pytest.mark.parametrize("content", [b'{"status": "comp', b"\xff\xfe", None])
def test_an_unreadable_json_file_gives_an_error_naming_it(tmp_path, content):
  path = tmp_path / "summary.json"
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(ValueError, match=rf"The run summary {path} cannot be read .*rerun"):
    files.read_json(path, "run summary")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_a_plain_open_gives(tmp_path, umask):
  # Others on a shared filesystem read a run's files as they read its TensorBoard files.
  old = os.umask(umask)
  try:
    files.write_json(tmp_path / "summary.json", {})
    with files.atomic_path(tmp_path / "maps.npz") as temporary:
      temporary.write_bytes(b"")
    (tmp_path / "plain").write_text("")
  finally:
    os.umask(old)
  modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
  assert modes == dict.fromkeys(("summary.json", "maps.npz", "plain"), 0o666 & ~umask)
