"""`MobiusMap`: per-channel Möbius maps, and the identity and unitary initialisations."""

import flax.linen as nn
import jax
import numpy as np

import mobius_jax as mj
from mobius_jax.layers import MobiusMap
from mobius_jax.models import MaskedLM, ModelConfig


def pair(seed, *shape):
  return tuple(jax.random.normal(jax.random.key(seed + i), shape) for i in range(2))


def complex_of(p):
  return jax.lax.complex(*p)


IDS = jax.numpy.array([[5, 7, 9, 11, 13, 3], [4, 6, 8, 10, 12, 14]])


def tiny(model, **overrides):
  """A tiny preset with a small vocabulary."""
  return ModelConfig.preset(f"{model}-tiny", vocab_size=64, **overrides)


def init(model, config, seed=0):
  return nn.meta.unbox(model.init(jax.random.key(seed), IDS))["params"]


def test_mobius_map_applies_its_coefficients_per_channel():
  z = pair(0, 2, 3, 4)
  layer = MobiusMap(eps=1e-6)
  params = nn.meta.unbox(layer.init(jax.random.key(1), z))["params"]
  c = params["coefficients"]
  a, b, cc, d = (jax.lax.complex(c[i, 0], c[i, 1]) for i in range(4))
  out = layer.apply({"params": params}, z)
  np.testing.assert_allclose(
    complex_of(out), mj.mobius_transform(complex_of(z), a, b, cc, d), rtol=1e-4, atol=1e-5
  )
  # Identity initialisation plus 0.01 noise: f(z) ≈ z.
  np.testing.assert_allclose(complex_of(out), complex_of(z), atol=0.2)


def test_unitary_init_gives_rotations_of_the_sphere():
  config = tiny("mobius_bert", mobius_init="unitary")
  params = init(MaskedLM(config), config)
  coefficients = params["backbone"]["encoder"]["layer_0"]["attention"]["query_mobius"]
  c = coefficients["coefficients"]
  m = tuple(jax.lax.complex(c[i, 0], c[i, 1]) for i in range(4))
  np.testing.assert_allclose(mj.determinant(m), 1.0, atol=1e-5)
  assert set(np.asarray(mj.classify(m, tol=1e-4)).tolist()) <= {mj.MOBIUS_TYPES.index("elliptic")}


def test_identity_init_starts_near_the_identity_map():
  config = tiny("mobius_bert")
  params = init(MaskedLM(config), config)
  c = params["backbone"]["encoder"]["layer_0"]["attention"]["query_mobius"]["coefficients"]
  identity = np.zeros(c.shape)
  identity[[0, 3], 0] = 1.0
  np.testing.assert_allclose(c, identity, atol=0.06)  # noise std 0.01
