"""The main job: ``python -m experiments run [--preset quick|paper|smoke] [--set KEY=VALUE] [--out DIR]``.

Sub-commands run one part: ``mnist``, ``frey`` (each also rewrites the report) or ``report`` (from the
metrics already written). ``--seeds 0,1,2`` repeats a run once per seed and reports mean ± std;
``sweep --grid KEY=V1,V2 [--seeds ...] [--scheduler ADDRESS]`` runs a grid of settings, locally or on a
Dask cluster (see :mod:`experiments.collection`). Finished training is reused from the checkpoints in ``DIR/checkpoints`` and an
interrupted run continues where it stopped, when the checkpoint was made from the same data and settings.
"""

import minidl  # noqa: F401  (first, so that its OpenBLAS setting precedes NumPy's import)
from experiments.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
