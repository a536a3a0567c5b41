"""The example scripts run as a user runs them and print what they promise."""

import pathlib
import re
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).parents[1] / "examples"


def test_every_example_has_a_test():
  assert sorted(path.name for path in EXAMPLES.glob("*.py")) == ["demo.py"]


def test_demo():
  result = subprocess.run(
    [sys.executable, str(EXAMPLES / "demo.py")],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert re.findall(r"^  (\S.*?)\s{2,}(\w+) +f\(0\.5", out, flags=re.MULTILINE) == [
    ("z + 1", "parabolic"),
    ("2z", "hyperbolic"),
    ("e^{0.7i} z", "elliptic"),
    ("(1 + i) z", "loxodromic"),
    ("(z + 2) / (z + 1)", "loxodromic"),
  ]
  composed, nested = re.search(r"\(f ∘ g\)\(z\) = (\S+),  f\(g\(z\)\) = (\S+)", out).groups()
  assert composed == nested
  back, z = re.search(r"f⁻¹\(f\(z\)\) = (\S+) for z = (\S+)", out).groups()
  assert back == z
  errors = re.findall(r"^  (\w+) +output .* = (\S+)$", out, flags=re.MULTILINE)
  assert [score for score, _ in errors] == ["hermitian", "bilinear", "magnitude"]
  assert all(float(error) < 1e-5 for _, error in errors), errors
