"""The two array types the package passes around: complex pairs and Möbius coefficients."""

from __future__ import annotations

from jax import Array

Pair = tuple[Array, Array]
"""A complex array as `(real, imag)`: two real arrays of one shape (float32, bfloat16…)."""

MapCoefficients = tuple[Array, Array, Array, Array]
"""The maps f(z) = (az + b)/(cz + d) as `(a, b, c, d)`: four complex arrays of one shape, one map
per element (numpy arrays in the analysis)."""
