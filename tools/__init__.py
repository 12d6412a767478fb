"""Build and test tooling of the cmagrounding repository (not installed with the package).

* :mod:`tools.demo`: the demo model's build (videos -> features -> ``cmagrounding train
  --recipe demo``), its settings, and sentences absent from a generated video;
* :mod:`tools.video`: synthetic test videos and damaged-file mutants for the decoder's tests.

Run from the repository root (``python -m tools.demo.build ...``); tests and benchmarks put the
root on ``sys.path``.
"""
