"""Exported model folders loaded by transformers in a new process where JAX, Flax and
mobius_jax cannot be imported (as a user without them would load them), offline."""

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import numpy as np

PROGRAM = """
import json, pathlib, sys

for name in ("jax", "jaxlib", "flax", "optax", "mobius_jax"):
  sys.modules[name] = None  # `import jax` fails; transformers sees no JAX or Flax installed

import numpy as np
import torch
import transformers

jobs = json.loads(pathlib.Path(sys.argv[1]).read_text())
for job in jobs:
  folder, out = job["folder"], {}
  inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in job["inputs"].items()}
  architectures = json.loads((pathlib.Path(folder) / "config.json").read_text())["architectures"]
  with torch.no_grad():
    encoder = transformers.AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    result = encoder(**inputs)
    out["sequence"] = result.last_hidden_state.numpy()
    if job["pooled"]:
      out["pooled"] = result.pooler_output.numpy()
    auto = {"ForMaskedLM": "mlm", "ForSequenceClassification": "classifier"}
    for suffix, key in auto.items():
      if any(name.endswith(suffix) for name in architectures):
        cls = getattr(transformers, "AutoModel" + suffix)
        model = cls.from_pretrained(folder, trust_remote_code=True).eval()
        out[key] = model(**inputs).logits.numpy()
  if job.get("text"):
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    out["token_ids"] = np.asarray(tokenizer(job["text"])["input_ids"])
  if job.get("resave"):  # changed weights, saved by the PyTorch side
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
      for parameter in model.parameters():
        parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
      out["resaved"] = model(**inputs).logits.numpy()
    model.save_pretrained(job["resave"])
  np.savez(job["out"], **out)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("jax", "flax", "mobius_jax"))
print("loaded:", [n for n in loaded if sys.modules[n] is not None])
"""


def start_pytorch(jobs: list[dict], tmp_path: pathlib.Path) -> Callable[[], list[dict]]:
  """Starts the jobs in one new process; the returned function waits for it and returns each
  job's outputs (numpy arrays), so that the caller computes its own meanwhile.

  A job: `folder` (the export), `inputs` (name → int array `[B, L]`), `pooled` (read the
  pooler output), optional `text` (tokenised with AutoTokenizer → "token_ids") and `resave`
  (a folder: the last head's weights are changed, its logits returned as "resaved", and the
  model saved there with `save_pretrained`). Outputs: "sequence", "pooled", "mlm",
  "classifier" (the heads the folder's config.json names).
  """
  for i, job in enumerate(jobs):
    job.update(out=str(tmp_path / f"outputs_{i}.npz"), folder=str(job["folder"]))
    job["inputs"] = {k: np.asarray(v).tolist() for k, v in job["inputs"].items()}
    if job.get("resave"):
      job["resave"] = str(job["resave"])
  (tmp_path / "jobs.json").write_text(json.dumps(jobs))
  env = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "HF_HOME": str(tmp_path / "hf_home"),  # the remote code's module cache goes here
  }
  process = subprocess.Popen(
    [sys.executable, "-c", PROGRAM, str(tmp_path / "jobs.json")],
    cwd=tmp_path,  # not the repository: mobius_jax must not be importable from the folder
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )

  def outputs() -> list[dict]:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-4000:]
    assert "loaded: []" in stdout, stdout
    return [dict(np.load(job["out"])) for job in jobs]

  return outputs
