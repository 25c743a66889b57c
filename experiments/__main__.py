"""The main job: ``python -m experiments run [--preset quick|paper|smoke] [--set KEY=VALUE] [--out DIR]``.

Sub-commands run one part: ``mnist``, ``frey`` (each also rewrites the report) or ``report`` (from the
metrics already written). ``--seeds 0,1,2`` repeats a run once per seed and reports mean ± std;
``sweep --grid KEY=V1,V2 [--seeds ...] [--scheduler ADDRESS]`` runs a grid of settings, locally or on a
Dask cluster (see :mod:`experiments.collection`). Finished training is reused from the checkpoints in
``DIR/checkpoints`` and an interrupted run continues where it stopped, when the checkpoint was made from the
same data and settings.
"""

import minidl

minidl.tune_process()  # before NumPy is imported: docs/kernels.md, "Threads on a small machine"

from experiments.pipeline import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
