"""Position encodings (rotary, real RoFormer form and complex form; sinusoids), token selection.

Shapes use the package's letters (`mobius_jax`): B batch, L length, N heads, H head dim (real,
even), C complex dims per head, P selected positions.
Positions are integer arrays `[L]` or `[B, L]`; None means 0 … L − 1.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from mobius_jax.ops.types import Pair


def rotary_frequencies(num_freqs: int, *, base: float = 10_000.0) -> Array:
  """θ_j = base^(−j / num_freqs), j = 0 … num_freqs − 1: RoFormer's θ_j = base^(−2j / H)."""
  return base ** (-jnp.arange(num_freqs, dtype=jnp.float32) / num_freqs)


def sinusoidal_position_encoding(
  positions: Array | int, dim: int, *, base: float = 10_000.0
) -> Array:
  """RoFormer's fixed encoding [sin(m θ_j) | cos(m θ_j)], j < dim / 2, θ_j = base^(−2j / dim).

  Args:
    positions: integer positions m of any shape `P`, or a length L for 0 … L − 1.
    dim: encoding width, even.
    base: frequency base.

  Returns:
    float32 `[*P, dim]` (or `[L, dim]`).
  """
  _check_even("dim", dim)
  if isinstance(positions, int):
    positions = jnp.arange(positions)
  angles = _angles(positions, dim // 2, base)  # [*P, dim / 2]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def apply_rope(x: Array, positions: Array | None = None, *, base: float = 10_000.0) -> Array:
  """Rotates each pair (x_{2j}, x_{2j+1}) of `x` by the angle m · θ_j (RoFormer's layout).

  With q and k rotated this way, q_m · k_n depends on the positions only through m − n.

  Args:
    x: `[B, L, N, H]` queries or keys, H even.
    positions: `[L]` or `[B, L]` integer positions m; default 0 … L − 1.
    base: frequency base.

  Returns:
    `[B, L, N, H]`, in the dtype of `x`.
  """
  *_, length, _, head_dim = x.shape
  _check_even("head dim of x", head_dim)
  angles = _angles(_default(positions, length), head_dim // 2, base)
  angles = angles[..., None, :]  # [(B,) L, 1, H/2]
  pairs = x.reshape(*x.shape[:-1], head_dim // 2, 2).astype(jnp.float32)
  even, odd = _rotate((pairs[..., 0], pairs[..., 1]), angles)
  return jnp.stack([even, odd], axis=-1).reshape(x.shape).astype(x.dtype)


def apply_complex_rope(x: Pair, positions: Array | None = None, *, base: float = 10_000.0) -> Pair:
  """Multiplies complex dimension j at position m by e^{i m θ_j}: an elliptic Möbius map.

  For complex q and k rotated this way, Re(q_m · conj(k_n)) depends only on m − n. With
  θ_j = base^(−j / C), a complex head of C dims uses RoFormer's frequencies for width 2C.

  Args:
    x: pair `(re, im)` of `[B, L, N, C]` arrays.
    positions: `[L]` or `[B, L]` integer positions m; default 0 … L − 1.
    base: frequency base.

  Returns:
    Pair of `[B, L, N, C]` arrays, in the dtype of `x`.
  """
  re, im = x
  *_, length, _, num_dims = re.shape
  angles = _angles(_default(positions, length), num_dims, base)[..., None, :]  # [(B,) L, 1, C]
  out = _rotate((re.astype(jnp.float32), im.astype(jnp.float32)), angles)
  return out[0].astype(re.dtype), out[1].astype(im.dtype)


def take_tokens(x: Array, indices: Array) -> Array:
  """The tokens of `x` at `indices`, per row: `[B, L, ...]`, int `[B, P]` → `[B, P, ...]`."""
  indices = indices.reshape(*indices.shape, *(1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, indices, axis=1)


def query_positions(positions: Array | None, indices: Array) -> Array:
  """Position ids `[B, P]` of the tokens at `indices` `[B, P]`; positions: `[L]`, `[B, L]`, None.

  None stands for 0 … L − 1, so the ids are the indices themselves.
  """
  if positions is None:
    return indices
  if positions.ndim == 1:
    return positions[indices]
  return take_tokens(positions, indices)


def _default(positions: Array | None, length: int) -> Array:
  return jnp.arange(length) if positions is None else positions


def _angles(positions: Array, num_freqs: int, base: float) -> Array:
  """m · θ_j as float32 `[*positions.shape, num_freqs]`."""
  return positions[..., None].astype(jnp.float32) * rotary_frequencies(num_freqs, base=base)


def _rotate(x: Pair, angles: Array) -> Pair:
  """(re + i·im) · e^{i·angles}."""
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  return x[0] * cos - x[1] * sin, x[0] * sin + x[1] * cos


def _check_even(name: str, value: int) -> None:
  if value % 2:
    raise ValueError(f"{name} must be even (it is split into pairs); got {value}.")
