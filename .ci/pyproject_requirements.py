"""Print the requirements pyproject.toml names, one a line, for ``pip install -r``.

``python .ci/pyproject_requirements.py build`` prints [build-system] requires;
``python .ci/pyproject_requirements.py NAME`` prints the NAME extra. The CI
steps install these into .ci/run's virtual environment, so pyproject.toml
stays the one list of what each part needs.
"""
import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(which):
    text = PYPROJECT.read_text()
    try:
        import tomllib
    except ImportError:  # Python < 3.11: each list sits on the line of its key
        key = "requires" if which == "build" else which
        line = next(l for l in text.splitlines() if l.strip().startswith(f"{key} ="))
        return re.findall(r'"([^"]+)"', line)
    data = tomllib.loads(text)
    if which == "build":
        return data["build-system"]["requires"]
    return data["project"]["optional-dependencies"][which]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1])))
