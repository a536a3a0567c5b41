"""A tour of the pure functions: Möbius maps, their types, and Möbius attention.

python examples/demo.py
"""

import cmath

import jax
import jax.numpy as jnp
import numpy as np

import mobius_jax as mj


def show_maps():
  print("Textbook Möbius maps f(z) = (az + b) / (cz + d):")
  textbook = {
    "z + 1": (1, 1, 0, 1),
    "2z": (2, 0, 0, 1),
    "e^{0.7i} z": (cmath.exp(0.7j), 0, 0, 1),
    "(1 + i) z": (1 + 1j, 0, 0, 1),
    "(z + 2) / (z + 1)": (1, 2, 1, 1),
  }
  m = tuple(jnp.array([v[i] for v in textbook.values()], jnp.complex64) for i in range(4))
  types = mj.classify(m)
  first, second = mj.fixed_points(m)
  images = mj.mobius_transform(jnp.complex64(0.5 + 0.5j), *m)
  for i, name in enumerate(textbook):
    print(
      f"  {name:18s} {mj.MOBIUS_TYPES[types[i]]:10s} f(0.5 + 0.5i) = {complex(images[i]):.3f}"
      f"   fixed points {complex(first[i]):.3f}, {complex(second[i]):.3f}"
    )
  # Composition is the matrix product; the inverse undoes the map.
  f, g = (tuple(x[i] for x in m) for i in (4, 1))  # (z + 2) / (z + 1) and 2z
  z = jnp.complex64(0.3 - 0.2j)
  fg = mj.mobius_transform(z, *mj.compose(f, g))
  print(
    f"  (f ∘ g)(z) = {complex(fg):.4f},  f(g(z)) = "
    f"{complex(mj.mobius_transform(mj.mobius_transform(z, *g), *f)):.4f}"
  )
  back = mj.mobius_transform(mj.mobius_transform(z, *f), *mj.inverse(f))
  print(f"  f⁻¹(f(z)) = {complex(back):.4f} for z = {complex(z):.4f}")
  pole = -m[3][4] / m[2][4]
  safe = mj.mobius_transform(pole, *f, eps=1e-6)
  print(
    f"  at the pole z = {complex(pole):.1f}: exact {complex(mj.mobius_transform(pole, *f))},"
    f" pole-safe {complex(safe)}"
  )


def show_attention():
  batch, length, heads, dims = 2, 8, 4, 16  # C = 16 complex dims = real width 32
  keys = jax.random.split(jax.random.key(0), 6)
  q, k, v = [
    (
      jax.random.normal(keys[2 * i], (batch, length, heads, dims)),
      jax.random.normal(keys[2 * i + 1], (batch, length, heads, dims)),
    )
    for i in range(3)
  ]
  mask = mj.padding_mask(jnp.array([[1] * 8, [1] * 5 + [0] * 3]))
  print("\nMöbius attention on complex q, k, v of shape", q[0].shape, "(as real pairs):")
  for score in mj.SCORE_MODES:
    out = mj.mobius_dot_product_attention(q, k, v, score=score, mask=mask)
    ref = mj.mobius_attention_reference(
      *(jax.lax.complex(*x) for x in (q, k, v)), score=score, mask=mask
    )
    err = np.abs(np.asarray(jax.lax.complex(*out) - ref)).max()
    print(
      f"  {score:9s} output {out[0].shape} re/im, max |fused − complex64 reference| = {err:.1e}"
    )


if __name__ == "__main__":
  show_maps()
  show_attention()
