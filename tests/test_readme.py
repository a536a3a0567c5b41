"""The README's Python examples run as written, in order, like one interpreter run.

Blocks fenced as ```python run; illustrative ones that need files (```py) do not.
"""

import pathlib
import re

README = pathlib.Path(__file__).parents[1] / "README.md"


def test_readme_python_examples_run():
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
  assert len(blocks) >= 2, "README.md lost its ```python examples"
  namespace = {}
  for block in blocks:
    exec(compile(block, str(README), "exec"), namespace)
