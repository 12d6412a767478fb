"""`import cmagrounding` stays light: heavy and optional parts load only when used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY_OPTIONAL = ["cmagrounding.training", "matplotlib", "h5py", "pytorchvideo", "jax", "flax"]


def loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_bare_import_loads_no_torch_nor_optional_parts():
    mods = loaded_after("import cmagrounding")
    assert "torch" not in mods
    assert not [m for m in HEAVY_OPTIONAL if m in mods]


def test_grounder_import_loads_no_training_plotting_or_optional_backbones():
    mods = loaded_after("from cmagrounding import Grounder")
    assert "cmagrounding.grounder" in mods
    assert not [m for m in HEAVY_OPTIONAL if m in mods], [m for m in HEAVY_OPTIONAL if m in mods]


def test_cli_help_is_fast_to_import():
    mods = loaded_after("import cmagrounding.cli")
    assert "torch" not in mods
