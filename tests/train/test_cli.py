"""What the commands share (`train.cli`): KEY=VALUE overrides, and the start that refuses stray
arguments."""

import pathlib
import subprocess
import sys

import pytest

from train import cli

ROOT = pathlib.Path(__file__).parents[2]


def test_overrides_are_python_literals_or_strings():
  assert cli.parse_overrides(["num_train_steps=3", "dtype=float32", "length_buckets=(8, 16)"]) == {
    "num_train_steps": 3,
    "dtype": "float32",
    "length_buckets": (8, 16),
  }
  with pytest.raises(ValueError, match="use KEY=VALUE"):
    cli.parse_overrides(["dtype"])


def test_a_bad_override_names_where_it_came_from():
  assert cli.parse_overrides([]) == {}
  assert cli.parse_overrides(["name=a=b"]) == {"name": "a=b"}  # split at the first "="
  with pytest.raises(ValueError, match=r"^--override 'dtype': use KEY=VALUE, e\.g\. dtype=float32"):
    cli.parse_overrides(["dtype"])
  with pytest.raises(ValueError, match=r"^--models '=3': use KEY=VALUE"):
    cli.parse_overrides(["=3"], what="--models")


def test_a_command_refuses_unexpected_arguments():
  result = subprocess.run(
    [sys.executable, "-m", "train.main", "--workdir=/nowhere", "extra"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode != 0
  assert "Unexpected arguments: ['extra']" in result.stderr
  assert not pathlib.Path("/nowhere").exists()
