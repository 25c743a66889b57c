"""Below how many elements an element-wise kernel runs on one thread.

A sleeping thread takes tens of microseconds to wake: below these sizes waking the others costs more
than they save (docs/kernels.md, "Threads on a small machine", gives the measurements). Numba reads
these module constants when it compiles a kernel, as literals.
"""

SERIAL_BELOW = 131_072
"""ReLU, the sigmoid's select, the capped absolute value and the BCE rows."""

ADAM_SERIAL_BELOW = 262_144
"""Adam's update, which runs right after OpenBLAS's products: a VAE step's update of its largest
weight (143,360 numbers) took longer on two threads than on one."""
