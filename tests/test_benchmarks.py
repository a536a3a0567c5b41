"""Each benchmark script runs end to end on a tiny setting and prints its table.

Subprocesses, because the scripts set up jax themselves (scaling.py and pod.py ask for fake
devices before importing it) and parse their absl flags. They inherit conftest's fast-compile
setting and its 8 fake devices. What pod.py computes with (`train.core.plan`) is tested in
tests/train/core/test_plan.py.
"""

import pathlib
import re
import subprocess
import sys

import pytest

from tests.helpers import hugging_face_checkpoint

BENCHMARKS = pathlib.Path(__file__).parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
  result = subprocess.run(
    [sys.executable, str(BENCHMARKS / script), *args],
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def table_rows(output: str) -> list[list[str]]:
  """The cells of a markdown table's body rows."""
  lines = [line for line in output.splitlines() if line.startswith("| ")]
  return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_every_script_has_a_smoke_test():
  # benchmarks/README.md promises it; a new script needs a test here that runs it by name.
  # A script ends in `app.run(main)`; common.py and steps.py are the scripts' library.
  tests = pathlib.Path(__file__).read_text()
  scripts = [path.name for path in BENCHMARKS.glob("*.py") if "app.run(main)" in path.read_text()]
  assert "train_step.py" in scripts
  assert [script for script in scripts if f'"{script}"' not in tests] == []


def test_a_stray_argument_is_an_error():
  # List flags are comma-separated: a second value after a space is an unexpected argument.
  result = subprocess.run(
    [sys.executable, str(BENCHMARKS / "attention.py"), "--lengths", "16", "32"],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode != 0 and "Unexpected arguments: ['32']" in result.stderr


def test_attention():
  args = ("--lengths", "16,32", "--tokens", "64", "--heads", "2", "--head_dim", "8")
  rows = table_rows(run("attention.py", *args, "--repeats", "1"))
  assert [row[:2] for row in rows] == [["16", "4"], ["32", "2"]]
  assert all(row[5].endswith("×") and row[6].endswith("×") for row in rows)


def test_attention_layer():
  args = ("--lengths", "16", "--tokens", "32", "--hidden", "16", "--heads", "2", "--repeats", "1")
  (row,) = table_rows(run("attention_layer.py", *args))
  assert row[0] == "16" and row[5].endswith("×")


def test_train_step():
  # MöbiusBERT's step, the same `our_step`, runs in test_gpu_script_smoke.
  variants = ("hf bert", "bert", "bert, full last layer", "bert, all logits")
  args = ("--sizes", "tiny", "--batch", "2", "--length", "16", "--repeats", "1", "--gemm", "64")
  # A comma-separated list: the names that hold a comma are quoted, as in a CSV row.
  out = run("train_step.py", *args, "--variants", ",".join(f'"{v}"' for v in variants))
  rows = table_rows(out)
  assert [row[1] for row in rows] == list(variants)
  assert all(row[6] and row[7] for row in rows)  # the ratios to hf bert and to bert
  assert all(float(row[10]) > 0 and row[11].endswith("%") for row in rows)  # the FLOP bound
  assert "# tiny: first-step losses" in out and "GEMM 64³" in out


def test_finetune_step(tmp_path):
  # A random tiny BERT folder stands in for the real checkpoint; at dropout 0 both steps start
  # from the same weights on the same batch, so their first losses agree.
  pytest.importorskip("torch")
  pytest.importorskip("transformers")
  hugging_face_checkpoint(tmp_path / "hf")
  args = ("--checkpoint", str(tmp_path / "hf"), "--batch", "2", "--lengths", "16")
  out = run("finetune_step.py", *args, "--repeats", "1", "--dropout", "0", "--torch_threads", "1")
  rows = table_rows(out)
  assert [row[:2] for row in rows] == [["16", "ours"], ["16", "torch, 1 thread"]]
  assert float(rows[0][2]) > 0 and rows[0][5].endswith("×") and rows[1][5] == "1.00×"
  losses = re.search(r"first-step losses ours ([\d.]+), torch, 1 thread ([\d.]+)", out)
  assert float(losses[1]) == pytest.approx(float(losses[2]), abs=1e-4)


def test_profile_step():
  args = ("--size", "tiny", "--batch", "2", "--length", "16", "--steps", "1")
  rows = table_rows(run("profile_step.py", *args))
  kinds = [row[0] for row in rows]
  assert kinds[:2] == ["matmul, encoder", "matmul, output layer"] and len(kinds) == 7
  assert abs(sum(float(row[1]) for row in rows[:-1]) - float(rows[-1][1])) <= 6  # rounding
  assert float(rows[0][1]) + float(rows[1][1]) > 0  # the matmuls were found in the trace


def test_scaling_losses_match_one_device():
  args = ("--models", "bert-tiny", "--shardings", "data", "--devices", "1,2")
  out = run("scaling.py", *args, "--batch", "2", "--length", "16", "--repeats", "1")
  rows = table_rows(out)
  assert [row[2] for row in rows] == ["1", "2"]
  assert all(float(row[5]) < 1e-4 for row in rows)


@pytest.mark.slow
def test_scaling_every_sharding():
  args = ("--models", "bert-tiny,mobius_bert-tiny", "--devices", "1,2,4")
  out = run("scaling.py", *args, "--batch", "4", "--length", "16", "--repeats", "1")
  rows = table_rows(out)
  assert len(rows) == 2 * 3 * 3
  assert all(float(row[5]) < 1e-4 for row in rows)


def test_length_buckets():
  # Reads the offline polarity task and the main job's tokenizer (fetched once, then cached).
  args = ("--model", "bert-tiny", "--batch", "4", "--batches", "2", "--repeats", "1")
  rows = table_rows(run("length_buckets.py", *args, "--max_len", "64", "--buckets", "32,64"))
  assert [row[0] for row in rows] == ["sentences", "pairs"]
  assert all(row[4].endswith("×") for row in rows)


def test_gpu_script_smoke(tmp_path):
  run("gpu.py", "--smoke", "--out", str(tmp_path))
  assert (tmp_path / "gpu.json").exists()
  rows = table_rows((tmp_path / "gpu.md").read_text())
  assert [row[0] for row in rows] == ["bert-tiny", "mobius_bert-tiny"]
  assert not [row for row in rows if any(cell.startswith("failed") for cell in row)]


def test_input_pipeline():
  # Reads WikiText-2 and the polarity task offline; trains a 30,522-token WordPiece once (cached).
  output = run("input_pipeline.py", "--batch", "8", "--batches", "2", "--presets", "bert-tiny")
  assert "MFLOP per token (XLA)" in output
  rows = table_rows(output)
  names = [row[0] for row in rows]
  assert names[:5] == [
    "C4 streaming, one document at a time, whole",
    "C4 streaming, one document at a time, whole",
    "C4 streaming, one document at a time, cut first",
    "C4 streaming, one document at a time, cut first",
    "C4 streaming",
  ]
  assert len(rows) == 9 and all(float(row[4]) > 0 for row in rows)  # cores a v4 host needs


def run_pod(*args: str) -> list[str]:
  """pod.py's table rows for bert-tiny on 8 fake devices, 1 × 8 × 1, 16 rows × 32 tokens."""
  tiny = ("--presets", "bert-tiny", "--meshes", "1x8x1", "--batch", "16", "--length", "32")
  output = run("pod.py", *tiny, *args)
  assert "TPU v5e-64" in output
  return [line for line in output.splitlines() if line.startswith("| bert-tiny | 8 |")]


def test_pod_script_smoke():
  """One compile: 23 s on the 2 shared cores (10 s of CPU)."""
  memory, collective, flops = run_pod("--nocheck_flops")[:3]
  assert "1×8×1" in memory and memory.split("|")[4].strip() == "2"  # rows per device
  assert int(collective.split("|")[5].split("/")[0]) > 0  # FSDP gathers the weights
  assert flops.split("|")[6].strip() == "–"  # no 1-device compile


@pytest.mark.slow
def test_pod_cost_analysis_is_per_device():
  """On the partitioned program XLA counts one device's FLOPs: × 8 ≈ the 1-device compile's.

  Not exactly: some work is replicated, e.g. every device masks the whole batch (1.08 at this
  tiny size; 1.0003 at bert-base's 4,096 × 128). A global count would give 8.
  """
  flops = run_pod()[2]
  assert float(flops.split("|")[7]) == pytest.approx(1.0, abs=0.15)
