"""Where the project is: the root of the checkout and its Hydra config folder.

A base module with no project imports, so that every layer (the data loaders reading
``conf/benchmark/*.yaml``, the config resolvers, the entry points) can find the project without importing
a layer above it, and without depending on the current working directory (a test's temporary folder, a
SLURM node).
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
CONFIG_DIR: Path = PROJECT_ROOT / "conf"
