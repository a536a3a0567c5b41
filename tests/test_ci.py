"""CI runs what the README says, installs the tested versions, and fails without torch.

Upgrading a dependency is a deliberate commit: constraints.txt pins every package the suite was
run with, and README's install commands and .ci/run install with it.
"""

import os
import pathlib
import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()
CONSTRAINTS = "-c constraints.txt"


def readme_commands() -> list[str]:
  blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)
  return [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]


def pins() -> dict[str, str]:
  """constraints.txt as {canonical name: version}; every line a comment or `name==version`."""
  found = {}
  for line in (ROOT / "constraints.txt").read_text().splitlines():
    if line and not line.startswith("#"):
      match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
      assert match, f"constraints.txt: {line!r} is no exact pin (name==version)"
      found[canonicalize_name(match[1])] = match[2]
  return found


def test_ci_runs_the_readme_test_command_word_for_word():
  (command,) = [c for c in readme_commands() if c.startswith("python3 -m venv") and "pytest" in c]
  assert CONSTRAINTS in command
  ci_lines = CI.splitlines()
  assert command in ci_lines, f".ci/run must run README's test command as written: {command}"
  # …after installing torch and requiring it (tests/conftest.py), so that parity tests run.
  position = ci_lines.index(command)
  assert "export MOBIUS_JAX_REQUIRE_TORCH=1" in ci_lines[:position]
  assert any("pip install" in line and "torch==" in line for line in ci_lines[:position])


def test_every_install_uses_the_constraints():
  readme_installs = [c for c in readme_commands() if re.search(r"pip install .*-e ", c)]
  assert len(readme_installs) >= 3  # Quick start's two, Development's
  ci_installs = [line for line in CI.splitlines() if "pip install" in line and line[0] != "#"]
  for command in readme_installs + ci_installs:
    assert CONSTRAINTS in command, command


def test_constraints_pin_every_dependency_within_its_bounds():
  project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
  requirements = [Requirement(r) for r in project["dependencies"]]
  for extra in project["optional-dependencies"].values():
    requirements += [Requirement(r) for r in extra if not r.startswith(project["name"])]
  pinned = pins()
  for requirement in requirements:
    name = canonicalize_name(requirement.name)
    assert name in pinned, f"{name} is not pinned in constraints.txt"
    version = pinned[name]
    assert requirement.specifier.contains(version, prereleases=True), f"{requirement}: {version}"
  # torch comes from .ci/run's own command; the project itself is installed from the checkout.
  assert not {"torch", "mobius-jax"} & set(pinned)


PARITY_TEST = """
import pytest

def test_needs_torch():
  pytest.importorskip("{module}")
"""


@pytest.mark.parametrize("level", ["test", "module"])
@pytest.mark.parametrize("require", [False, True])
def test_a_missing_torch_fails_where_it_is_required(tmp_path, level, require):
  module = "torch_that_is_not_installed"  # its importorskip skips as a missing torch's would
  code = PARITY_TEST.format(module=module)
  if level == "module":
    code = f"import pytest\npytest.importorskip({module!r})\n" + code
  (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
  (tmp_path / "test_parity.py").write_text(code)
  env = {k: v for k, v in os.environ.items() if k != "MOBIUS_JAX_REQUIRE_TORCH"}
  if require:
    env["MOBIUS_JAX_REQUIRE_TORCH"] = "1"
  result = subprocess.run(
    [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  if require:
    assert result.returncode != 0, result.stdout
    assert "MOBIUS_JAX_REQUIRE_TORCH=1 requires torch, yet: Skipped" in result.stdout
  else:
    # Exit status 5 where the module skips: no test ran.
    assert result.returncode in (0, 5) and "1 skipped" in result.stdout, result.stdout
