"""Hand-built parameters whose every Möbius map is known: the analysis tests' model.

A MaskedLM of `CONFIG` whose Möbius layers hold the textbook maps of `LAYOUT`, each scaled by a
random complex λ (a map's type is kept under scaling).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mobius_jax.models import MaskedLM, ModelConfig

# Three layers M V M, 4 heads of 4 dims, the first 2 heads Möbius: 8 maps per Möbius layer.
CONFIG = ModelConfig(
  hidden_size=16,
  num_heads=4,
  intermediate_size=32,
  num_layers=3,
  vocab_size=40,
  max_position_embeddings=16,
  layout="MVM",
  num_mobius_heads=2,
)

# Textbook maps (a, b, c, d); each type is kept under scaling, so they are scaled below.
TEXTBOOK = {
  "identity": (1, 0, 0, 1),
  "parabolic": (1, 1, 0, 1),  # z + 1
  "elliptic": (np.exp(0.7j), 0, 0, 1),  # rotation
  "hyperbolic": (2, 0, 0, 1),  # 2z
  "loxodromic": (1 + 1j, 0, 0, 1),
}
# The type of each (layer, head, dim).
LAYOUT = {
  0: [
    ["identity", "parabolic", "parabolic", "hyperbolic"],
    ["elliptic", "elliptic", "elliptic", "loxodromic"],
  ],
  2: [
    ["hyperbolic", "hyperbolic", "hyperbolic", "hyperbolic"],
    ["loxodromic", "identity", "parabolic", "elliptic"],
  ],
}


def known_params() -> dict:
  """Initialised MaskedLM parameters with the maps of LAYOUT, each matrix scaled by λ."""
  model = MaskedLM(CONFIG)
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32)))
  params = jax.tree.map(np.asarray, params["params"])
  rng = np.random.default_rng(0)
  for layer, heads in LAYOUT.items():
    names = [name for head in heads for name in head]
    scale = rng.uniform(0.5, 2.0, len(names)) * np.exp(1j * rng.uniform(0, 6, len(names)))
    m = np.array([TEXTBOOK[name] for name in names], np.complex128).T * scale  # [4, 8]
    coefficients = np.stack([m.real, m.imag], axis=1).astype(np.float32)  # [4, 2, 8]
    attention = params["backbone"]["encoder"][f"layer_{layer}"]["attention"]
    attention["query_mobius"]["coefficients"] = coefficients
  return params
