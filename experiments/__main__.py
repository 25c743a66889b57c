"""The main job: ``python -m experiments run [--preset quick|paper|smoke] [--set KEY=VALUE] [--out DIR]``.

Sub-commands run one part: ``mnist``, ``frey`` (each also rewrites the report) or ``report`` (from the
metrics already written). Finished training is reused from the checkpoints in ``DIR/checkpoints`` and an
interrupted run continues where it stopped, when the checkpoint was made from the same data and settings.
"""

import minidl  # noqa: F401  (first, so that its OpenBLAS setting precedes NumPy's import)
from experiments.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
