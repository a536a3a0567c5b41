"""`pip install .` is the core: `mobius_jax` needs jax, flax and numpy, nothing of the extras.

The import test runs in a process where every package of the extras fails to import, so a
module of the core that imported one would fail here as in a venv with the core alone.
"""

import importlib.metadata
import pathlib
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What the extras bring (and the repository's own training code): none of it may be imported.
EXTRAS_ONLY = (
  "array_record",
  "grain",
  "matplotlib",
  "ml_collections",
  "safetensors",
  "sklearn",
  "tensorboardX",
  "tensorflow_datasets",
  "tokenizers",
  "torch",
  "tqdm",
  "transformers",
  "train",
  "configs",
)

PROGRAM = """
import sys

BLOCKED = {blocked!r}


class Blocker:
  def find_spec(self, name, path=None, target=None):
    if any(name == b or name.startswith(b + ".") for b in BLOCKED):
      raise ImportError(f"{{name}} is not part of the core install")
    return None


sys.meta_path.insert(0, Blocker())

import jax
import jax.numpy as jnp
from flax import nnx

import mobius_jax as mj
import mobius_jax.analysis as mja
import mobius_jax.nnx
from mobius_jax.models import MaskedLM, ModelConfig, SequenceClassifier, export, hf
from mobius_jax.sharding import DEFAULT_RULES, make_mesh

m = tuple(jnp.array(x, jnp.complex64) for x in (2, 1j, 1, 1))
mj.classify(m, tol=1e-3), mj.fixed_points(m), mj.compose(m, mj.inverse(m)), mj.normalize(m)
mj.mobius_transform(jnp.complex64(-1), *m, eps=1e-6)
keys = iter(jax.random.split(jax.random.key(0), 6))
q, k, v = [tuple(jax.random.normal(next(keys), (2, 8, 2, 4)) for _ in "ri") for _ in "qkv"]
mask = mj.padding_mask(jnp.ones((2, 8)))
mj.mobius_dot_product_attention(q, k, v, mask=mask)
mj.mobius_attention_reference(*(x[0] + 1j * x[1] for x in (q, k, v)), mask=mask)
mj.dot_product_attention(q[0], k[0], v[0], mask=mask)
mj.apply_rope(q[0], jnp.arange(8))
mj.sinusoidal_position_encoding(jnp.arange(8), 16)
for preset in ("bert-tiny", "mobius_roformer-tiny"):
  config = ModelConfig.preset(preset, vocab_size=64)
  ids = jnp.ones((2, 8), jnp.int32)
  params = MaskedLM(config).init(jax.random.key(0), ids)["params"]
  rngs = {{"dropout": jax.random.key(1)}}
  MaskedLM(config).apply({{"params": params}}, ids, deterministic=False, rngs=rngs)
  SequenceClassifier(config, 2).init(jax.random.key(0), ids)
  mja.map_report(params["backbone"] if "backbone" in params else params, config)
hf.config_to_hf(ModelConfig.preset("bert-tiny"))
export.config_to_hub(config), export.model_card(config, params)  # torch only in the folders
make_mesh(devices=jax.devices()[:1]), DEFAULT_RULES
mobius_jax.nnx.SequenceClassifier(config, 2, rngs=nnx.Rngs(0))
loaded = sorted(n for n in sys.modules if any(n == b or n.startswith(b + ".") for b in BLOCKED))
print("loaded:", loaded)
"""


def test_the_core_dependencies_are_jax_flax_and_numpy():
  names = sorted(Requirement(r).name for r in PYPROJECT["dependencies"])
  assert names == ["flax", "jax", "numpy"]
  # The training stack and the figures are extras.
  extras = PYPROJECT["optional-dependencies"]
  train = {Requirement(r).name for r in extras["train"]}
  assert {"grain", "tensorflow-datasets", "tokenizers", "tensorboardX"} <= train
  assert {"scipy", "scikit-learn", "optax", "orbax-checkpoint"} <= train
  assert [Requirement(r).name for r in extras["analysis"]] == ["matplotlib"]


def test_scipy_in_a_core_install_comes_from_jax():
  # jax itself requires scipy: a core venv holds it whatever this package asks for.
  assert "scipy" in {Requirement(r).name for r in importlib.metadata.requires("jax")}


def test_every_public_op_and_model_works_without_the_extras():
  result = subprocess.run(
    [sys.executable, "-c", PROGRAM.format(blocked=EXTRAS_ONLY)],
    cwd=ROOT / "tests",  # not the repository root: train/ and configs/ must not be found
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "loaded: []" in result.stdout
