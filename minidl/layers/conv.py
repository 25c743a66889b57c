"""2-D convolution and its adjoint, the transposed convolution, as im2col + one matrix product per batch.

Both layers share one picture. A strided convolution with weight W of shape (F, C, kH, kW) maps a
batch of images (N, C, H, W) to (N, F, OH, OW) by ``Y = W.reshape(F, -1) @ im2col(x) + b``, one product
whose columns run over every output position of every image. The transposed convolution is the
*adjoint* of that map: it multiplies by the transposed matrix and folds the columns back with
``col2im``. Forward of one is backward of the other.

Images are stored images-last, (C, H, W, N) (see :mod:`minidl.layers.memory`): the columns of the
product run over (output position, image), so the product is the output in that layout, and the
layers return it as an (N, F, OH, OW) view rather than copying it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from minidl.backend import kernels
from minidl.init import Initializer, get_initializer
from minidl.layers.base import Layer, positive_int
from minidl.layers.memory import Workspace, as_images, images_last
from minidl.winograd import F4X4_3X3, tile_grid, transform_weights, transform_weights_adjoint

ALGORITHMS = ("auto", "im2col", "winograd")
WINOGRAD = F4X4_3X3  # the tile size the "winograd" path uses (see docs/winograd.md for the choice)


def _check_padding(padding: object) -> str | int:
    if padding in ("same", "valid"):
        return padding
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool) and padding >= 0:
        return int(padding)
    raise ValueError(f"Expected padding to be 'same', 'valid' or a non-negative integer. Received: padding={padding!r}")


def conv_geometry(size: int, kernel: int, stride: int, padding: str | int) -> tuple[int, int]:
    """Output size and leading padding of a convolution along one axis.

    ``"same"`` follows TensorFlow: out = ceil(size / stride), and the total padding
    max((out - 1) * stride + kernel - size, 0) is split with the extra row at the end
    (for a 3x3 kernel at stride 1 that is one row on each side, as PyTorch's ``padding=1``).
    ``"valid"`` is padding 0; an integer p pads p on both sides: out = (size + 2p - kernel) // stride + 1.
    """
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - kernel) // stride + 1, pad


def conv_transpose_geometry(size: int, kernel: int, stride: int, padding: str | int) -> tuple[int, int]:
    """Output size and cropped leading rows of a transposed convolution along one axis.

    ``"same"``: out = size * stride with (kernel - 1) // 2 rows cropped in front, the numbers of
    PyTorch's ``conv_transpose2d(padding=(k - 1) // 2, output_padding=stride - 1)`` for odd kernels.
    An integer p (or ``"valid"`` = 0): out = (size - 1) * stride + kernel - 2p, as PyTorch's ``padding=p``.
    """
    if padding == "same":
        return size * stride, (kernel - 1) // 2
    pad = 0 if padding == "valid" else int(padding)
    return (size - 1) * stride + kernel - 2 * pad, pad


class _Convolution(Layer):
    """What :class:`Conv2D` and :class:`Conv2DTranspose` share: validated settings, a weight and a bias,
    the weight as a matrix, and the output shape. Each layer brings its own geometry (``_geometry``) and
    its own passes."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: str | int,
        rng: np.random.Generator | int | None,
        kernel_initializer: str | Initializer,
        dtype: DTypeLike,
        weight_shape: str,
    ) -> None:
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.kernel_size = positive_int("kernel_size", kernel_size)
        self.stride = positive_int("stride", stride)
        self.padding = _check_padding(padding)
        k = self.kernel_size
        init = get_initializer(kernel_initializer)
        rng = np.random.default_rng(rng)
        # Keras's fans: receptive field x input channels (fan in) and x output channels (fan out).
        fan_in, fan_out = self.in_channels * k * k, self.out_channels * k * k
        if weight_shape == "out_in":
            shape = (self.out_channels, self.in_channels, k, k)
        else:  # a transposed kernel (in, out, k, k): Keras counts its fans the other way round
            shape, fan_in, fan_out = (self.in_channels, self.out_channels, k, k), fan_out, fan_in
        self._add_param("W", init(shape, fan_in, fan_out, rng, dtype=dtype))
        self._add_param("b", np.zeros(self.out_channels, dtype=dtype))

    def _geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Output height and width, and the leading rows and columns of padding (or cropping)."""
        raise NotImplementedError

    def _check_images(self, x: np.ndarray) -> None:
        """Raise unless ``x`` is a batch of images (N, C_in, H, W) with this layer's input channels."""
        self._check_input(x, (None, self.in_channels, None, None), f"(N, {self.in_channels}, H, W)")

    def _weight_matrix(self, dtype: DTypeLike | None = None) -> np.ndarray:
        """W2 = W.reshape(W.shape[0], -1) (in ``dtype`` when given): (F, C kH kW) for :class:`Conv2D`,
        (C_in, C_out kH kW) for :class:`Conv2DTranspose`."""
        W = self.params["W"]
        W2 = W.reshape(W.shape[0], -1)
        return W2 if dtype is None else W2.astype(dtype, copy=False)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, height, width = input_shape
        out_h, out_w, _, _ = self._geometry(height, width)
        return (self.out_channels, out_h, out_w)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}->{self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding!r})"
        )


class Conv2D(_Convolution):
    """2-D convolution (cross-correlation, as every framework computes it).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Square kernels only.
    stride : int
    padding : "same", "valid" or int
        See :func:`conv_geometry`.
    rng : np.random.Generator, int or None
    kernel_initializer : str or callable, default "glorot_uniform"
    dtype : float32 by default.
    algorithm : "auto", "im2col" or "winograd"
        How the map is computed; "auto" lets :meth:`_choose_path` pick (Winograd from 16 input channels in
        float32, im2col in float64). Every path gives the same map (to rounding).

    Shapes
    ------
    x : (N, C, H, W) -> y : (N, F, OH, OW),
        OH = (H + pad_top + pad_bottom - kH) // stride + 1 (see :func:`conv_geometry`).
    W : (F, C, kH, kW), b : (F,)

    Notes
    -----
    With cols = im2col(x) of shape (C kH kW, OH OW N) and W2 = W.reshape(F, C kH kW), the whole batch is
    one product Y = W2 @ cols + b, with Y of shape (F, OH OW N), returned as an (N, F, OH, OW) view
    (:meth:`forward`). The bias rides in the product as one more column of the weight, against a row of
    ones under cols. With dY the upstream gradient in the same layout, the backward pass is three products
    (:meth:`backward`): dW2 = dY @ cols.T,  db = the sum of dY over its columns (dY @ ones),
    dx = col2im(W2.T @ dY). The tangent pass (:meth:`jvp`, :meth:`jvp_backward`) is the same linear map
    without the bias, on the K N tangent images as one batch.

    For 3x3 kernels at stride 1 the same map can be computed with fewer multiplications by Winograd's
    minimal filtering (:meth:`_winograd_forward` and its adjoint :meth:`_winograd_backward`,
    docs/winograd.md); :meth:`_choose_path` decides which path runs.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Conv2D
    >>> conv = Conv2D(1, 4, kernel_size=3, padding="same", rng=0)
    >>> y = conv.forward(np.ones((2, 1, 5, 5), np.float32))
    >>> y.shape
    (2, 4, 5, 5)
    >>> dx = conv.backward(np.ones_like(y))
    >>> dx.shape, conv.grads['W'].shape, conv.grads['b']
    ((2, 1, 5, 5), (4, 1, 3, 3), array([50., 50., 50., 50.], dtype=float32))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: str | int = "same",
        rng: np.random.Generator | int | None = None,
        kernel_initializer: str | Initializer = "glorot_uniform",
        dtype: DTypeLike = np.float32,
        algorithm: str = "auto",
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            rng,
            kernel_initializer,
            dtype,
            weight_shape="out_in",
        )
        # Scratch arrays, among them those the backward pass reads (im2col's columns, Winograd's V), kept
        # across calls: one set for the forward pass (slot "forward") and one for the tangent pass (slot
        # "tangent"), which runs between a forward pass and its backward pass. Each array, the backward
        # passes' own (dM, dV) included, has a name of its own: no pass relies on another's being spent.
        self._workspace = Workspace()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"Expected algorithm to be one of {ALGORITHMS}. Received: algorithm={algorithm!r}")
        if algorithm == "winograd" and (self.kernel_size != 3 or self.stride != 1):
            raise ValueError(
                "Expected algorithm='winograd' only for 3x3 kernels at stride 1. Received: "
                f"kernel_size={self.kernel_size}, stride={self.stride}"
            )
        self.algorithm = algorithm

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """y = W * x + b: ``cols = im2col(x)``, ``Y = W2 @ cols + b``, one product for the whole batch."""
        self._check_images(x)
        dtype = np.result_type(x, self.params["W"])
        if self._choose_path(dtype) == "winograd":
            y, cache = self._winograd_forward(x, self.params["b"], "forward")
            self._store(training, x, y, **cache)
            return y
        cols, geometry = self._im2col(x, dtype, "forward", ones=True)  # [cols; 1]: (C kH kW + 1, OH OW N)
        Y = self._weight_matrix_and_bias(dtype) @ cols  # W2 @ cols + b, as [W2 b] @ [cols; 1]
        y = self._as_output(Y, geometry, len(x))  # (F, OH OW N) -> an (N, F, OH, OW) view
        self._store(training, x, y, path="im2col", cols=cols, geometry=geometry)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """dW2 = dY @ cols.T and db = dY summed over its columns, added into the gradients;
        returns dx = col2im(W2.T @ dY), or None when the layer needs no input gradient."""
        cache = self._cached(dy)
        if cache["path"] == "winograd":
            return self._winograd_backward(cache, dy, self.grads["b"])
        cols = cache["cols"]  # [cols; 1], with the row of ones that carried the bias
        dY = self._output_matrix(dy, cols.dtype)  # (F, OH OW N)
        dW2_db = dY @ cols.T  # [dW2 db] = dY @ [cols; 1].T: db = dY @ ones, dY summed over its columns
        self.grads["W"] += dW2_db[:, :-1].reshape(self.params["W"].shape)
        self.grads["b"] += dW2_db[:, -1]
        if not self.needs_input_grad:
            return None
        return self._col2im(self._weight_matrix().T @ dY, cache)

    def jvp(self, t: np.ndarray) -> np.ndarray:
        """Tangents (K, N, C, H, W) -> (K, N, F, OH, OW): the map of :meth:`forward` without the bias,
        ``W2 @ im2col(t)``, with the K N tangent images as one batch."""
        self._start_tangent(t)
        tx = self._merge(t)  # (K N, C, H, W)
        dtype = np.result_type(tx, self.params["W"])
        if self._choose_path(dtype) == "winograd":
            ty, cache = self._winograd_forward(tx, None, "tangent")
        else:
            cols, geometry = self._im2col(tx, dtype, "tangent", ones=False)  # (C kH kW, OH OW K N)
            ty = self._as_output(self._weight_matrix(dtype) @ cols, geometry, len(tx))  # W2 @ cols
            cache = dict(path="im2col", cols=cols, geometry=geometry)
        self._store_tangent(input_shape=tx.shape, **cache)
        return ty.reshape(t.shape[:2] + ty.shape[1:])

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray | None, None]:
        """The adjoint of :meth:`jvp`: dW2 = dY @ cols.T added into dL/dW, and dt_in = col2im(W2.T @ dY)
        (None when the layer needs no input gradient); no second output (the map is linear)."""
        cache = self._tangent_cached(dt)
        dty = self._merge(dt)  # (K N, F, OH, OW)
        if cache["path"] == "winograd":
            dx = self._winograd_backward(cache, dty, None)
        else:
            cols = cache["cols"]
            dY = self._output_matrix(dty, cols.dtype)  # (F, OH OW K N)
            self.grads["W"] += (dY @ cols.T).reshape(self.params["W"].shape)  # dW2 = dY @ cols.T
            dx = self._col2im(self._weight_matrix().T @ dY, cache) if self.needs_input_grad else None
        return (None if dx is None else dx.reshape(dt.shape[:2] + dx.shape[1:])), None

    def _choose_path(self, dtype: DTypeLike | None = None) -> str:
        """How this layer computes: decided here and nowhere else (docs/kernels.md lists the paths).

        ``dtype`` is the dtype the layer computes in (by default its weights'). ``"im2col"``, the plain
        path of the class docstring, serves every geometry. ``"winograd"`` computes the same map for 3x3
        kernels at stride 1 with WINOGRAD's tiles, 3x fewer multiplications; it runs by default from 16
        input channels up, in float32 (and float16). With fewer channels the products over channels are
        too small to gain (the study's first layer has one input channel). float64 runs im2col: its
        outputs are exact sums wherever the input window is zero, where the Winograd transforms leave a
        rounding residue of either sign instead of 0, and a ReLU behind the layer takes its derivative
        from that sign (docs/winograd.md, "The kink at zero"). Asked for, float64 runs Winograd too.
        """
        if self.algorithm != "auto":
            return self.algorithm
        dtype = self.params["W"].dtype if dtype is None else np.dtype(dtype)
        if dtype == np.float64:
            return "im2col"
        if self.kernel_size == 3 and self.stride == 1 and self.in_channels >= 16:
            return "winograd"
        return "im2col"

    def _geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        out_h, pad_top = conv_geometry(height, self.kernel_size, self.stride, self.padding)
        out_w, pad_left = conv_geometry(width, self.kernel_size, self.stride, self.padding)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(
                f"{self!r}: input of {height}x{width} is smaller than the kernel "
                f"({self.kernel_size}x{self.kernel_size}) allows."
            )
        return out_h, out_w, pad_top, pad_left

    def _scratch(self, slot: str, name: str, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        """An uninitialised array kept in the workspace across calls (its contents are stale): one per
        ``slot`` (the pass, ``"forward"`` or ``"tangent"``) and ``name``."""
        return self._workspace.get(f"{slot}/{name}", shape, dtype)

    # -- the im2col path's layouts ------------------------------------------------------------

    def _im2col(self, x: np.ndarray, dtype: np.dtype, slot: str, ones: bool) -> tuple[np.ndarray, tuple[int, ...]]:
        """cols = im2col(x), (C kH kW, OH OW N) in the workspace, and the geometry; with ``ones``, one more row
        of ones below it, which carries the bias through the product."""
        n, _, height, width = x.shape
        out_h, out_w, pad_top, pad_left = geometry = self._geometry(height, width)
        k = self.kernel_size
        rows = self.in_channels * k * k
        cols = self._scratch(slot, "cols", (rows + 1, out_h * out_w * n), dtype)
        kernels.im2col(images_last(x, dtype), k, k, self.stride, pad_top, pad_left, out_h, out_w, cols[:rows])
        if not ones:
            return cols[:rows], geometry
        cols[rows] = 1.0
        return cols, geometry

    def _weight_matrix_and_bias(self, dtype: np.dtype) -> np.ndarray:
        """[W2 b], (F, C kH kW + 1) in ``dtype``: the bias as one more column of W2."""
        b = self.params["b"].astype(dtype, copy=False)
        return np.concatenate([self._weight_matrix(dtype), b[:, None]], axis=1)

    def _as_output(self, Y: np.ndarray, geometry: tuple[int, ...], n: int) -> np.ndarray:
        """(F, OH OW N) is the output stored images-last: returned as an (N, F, OH, OW) view, not copied."""
        out_h, out_w, _, _ = geometry
        return as_images(Y.reshape(self.out_channels, out_h, out_w, n))

    def _output_matrix(self, dy: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """dY: a gradient (N, F, OH, OW) as a (F, OH OW N) matrix, the layout of the product Y, in ``dtype``
        or wider (a wider upstream gradient widens the products, as NumPy promotes)."""
        return images_last(dy, np.result_type(dtype, dy)).reshape(self.out_channels, -1)

    def _col2im(self, dcols: np.ndarray, cache: dict[str, Any]) -> np.ndarray:
        """dx = col2im(dcols): the columns' gradients summed back into the pixels they were read from."""
        out_h, out_w, pad_top, pad_left = cache["geometry"]
        n, channels, height, width = cache["input_shape"]
        dx = np.empty((channels, height, width, n), dtype=dcols.dtype)
        k = self.kernel_size
        kernels.col2im(dcols, k, k, self.stride, pad_top, pad_left, out_h, out_w, dx)
        return as_images(dx)

    # -- the Winograd path (docs/winograd.md) ---------------------------------------------------

    def _winograd_forward(self, x: np.ndarray, bias: np.ndarray | None, slot: str) -> tuple[np.ndarray, dict[str, Any]]:
        """The map of :meth:`forward` (+ ``bias`` when given) by Winograd's minimal filtering
        (:mod:`minidl.winograd`): transform the input tiles (V) and the filters (U), one (F, C) @ (C, tiles)
        product per position of the transformed tile, transform the products back (adding the bias).
        Returns y and what :meth:`_winograd_backward` needs."""
        n, _, height, width = x.shape
        out_h, out_w, pad_top, pad_left = self._geometry(height, width)
        tiles_h, tiles_w = tile_grid(out_h, out_w, WINOGRAD.m)
        a = WINOGRAD.tile
        dtype = np.result_type(x, self.params["W"])
        V = self._scratch(slot, "V", (a * a, self.in_channels, tiles_h * tiles_w * n), dtype)
        kernels.winograd_input_tiles(
            images_last(x, dtype), WINOGRAD.BT.astype(dtype), pad_top, pad_left, tiles_h, tiles_w, V
        )
        U = transform_weights(self.params["W"].astype(dtype, copy=False), WINOGRAD.G)
        M = self._scratch(slot, "M", (a * a, self.out_channels, V.shape[2]), dtype)
        np.matmul(U, V, out=M)
        y = np.empty((self.out_channels, out_h, out_w, n), dtype=dtype)
        bias = np.zeros(self.out_channels, dtype) if bias is None else bias.astype(dtype, copy=False)
        kernels.winograd_output_tiles(M, WINOGRAD.AT.astype(dtype), bias, y)
        return as_images(y), dict(path="winograd", slot=slot, V=V, U=U, geometry=(pad_top, pad_left, tiles_h, tiles_w))

    def _winograd_backward(
        self, cache: dict[str, Any], dy: np.ndarray, bias_grad: np.ndarray | None
    ) -> np.ndarray | None:
        """The adjoint of :meth:`_winograd_forward`, its steps in reverse (docs/winograd.md): adds dL/dW (and
        dL/db into ``bias_grad`` when given); returns dL/dx, or None when the layer needs no input gradient."""
        V, U, slot = cache["V"], cache["U"], cache["slot"]
        pad_top, pad_left, tiles_h, tiles_w = cache["geometry"]
        dtype = np.result_type(V, dy)
        dM = self._scratch(slot, "dM", (U.shape[0], self.out_channels, V.shape[2]), dtype)
        db = np.empty(self.out_channels, dtype)
        kernels.winograd_output_tiles_adjoint(images_last(dy, dtype), WINOGRAD.AT.astype(dtype), dM, db)
        if bias_grad is not None:
            bias_grad += db
        self.grads["W"] += transform_weights_adjoint(np.matmul(dM, V.transpose(0, 2, 1)), WINOGRAD.G)
        if not self.needs_input_grad:
            return None
        dV = self._scratch(slot, "dV", V.shape, dtype)
        np.matmul(U.transpose(0, 2, 1), dM, out=dV)
        n, channels, height, width = cache["input_shape"]
        dx = np.empty((channels, height, width, n), dtype=dtype)
        kernels.winograd_input_tiles_adjoint(dV, WINOGRAD.BT.astype(dtype), pad_top, pad_left, tiles_h, tiles_w, dx)
        return as_images(dx)


class Conv2DTranspose(_Convolution):
    """Transposed convolution: the adjoint of a strided :class:`Conv2D` with the same weight.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int, default 3
    stride : int, default 2
    padding : "same", "valid" or int
        See :func:`conv_transpose_geometry`.
    rng, kernel_initializer, dtype : as :class:`Conv2D`.

    Shapes
    ------
    x : (N, C_in, H, W) -> y : (N, C_out, OH, OW), with OH = H * stride for ``"same"``.
    W : (C_in, C_out, kH, kW)  (PyTorch's layout for ``conv_transpose2d``), b : (C_out,)

    Notes
    -----
    Let A be the strided convolution that maps a (C_out, OH, OW) image to (C_in, H, W) with weight W, and
    W2 = W.reshape(C_in, C_out kH kW). This layer computes y = A^T x + b (:meth:`forward`): with X the input
    as a (C_in, H W N) matrix, cols = W2.T @ X and y = col2im(cols) + b. Its backward is A itself
    (:meth:`backward`): with dcols = im2col(dy), dW2 = X @ dcols.T, db = the sum of dy over images and
    positions, dx = W2 @ dcols. The tangent pass (:meth:`jvp`, :meth:`jvp_backward`) is the same map
    without the bias.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import Conv2DTranspose
    >>> up = Conv2DTranspose(4, 1, kernel_size=3, stride=2, padding="same", rng=0)
    >>> y = up.forward(np.ones((2, 4, 3, 3), np.float32))   # doubles height and width
    >>> y.shape
    (2, 1, 6, 6)
    >>> up.backward(np.ones_like(y)).shape
    (2, 4, 3, 3)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 2,
        padding: str | int = "same",
        rng: np.random.Generator | int | None = None,
        kernel_initializer: str | Initializer = "glorot_uniform",
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            rng,
            kernel_initializer,
            dtype,
            weight_shape="in_out",
        )

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """y = A^T x + b: ``cols = W2.T @ X`` with X the input as a matrix, ``y = col2im(cols) + b``."""
        self._check_images(x)
        dtype = np.result_type(x, self.params["W"])
        X = self._as_matrix(x, dtype)  # (C_in, H W N)
        cols = self._weight_matrix(dtype).T @ X  # (C_out kH kW, H W N)
        y = self._col2im(cols, x.shape)  # (C_out, OH, OW, N), stored images-last
        y += self.params["b"].astype(dtype, copy=False)[:, None, None, None]  # + b
        y = as_images(y)  # an (N, C_out, OH, OW) view
        self._store(training, x, y, X=X)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        """With dcols = im2col(dy): dW2 = X @ dcols.T and db = dy summed over images and positions, added
        into the gradients; returns dx = W2 @ dcols, or None when the layer needs no input gradient."""
        cache = self._cached(dy)
        X = cache["X"]
        dy = images_last(dy, np.result_type(X, dy))  # (C_out, OH, OW, N)
        self.grads["b"] += dy.sum(axis=(1, 2, 3))
        dcols = self._im2col(dy, cache["input_shape"])  # (C_out kH kW, H W N)
        self.grads["W"] += (X @ dcols.T).reshape(self.params["W"].shape)  # dW2 = X @ dcols.T
        if not self.needs_input_grad:
            return None
        return self._as_images(self._weight_matrix() @ dcols, cache["input_shape"])  # dx = W2 @ dcols

    def jvp(self, t: np.ndarray) -> np.ndarray:
        """Tangents (K, N, C_in, H, W) -> (K, N, C_out, OH, OW): A^T without the bias, ``col2im(W2.T @ X)``
        with X the K N tangent images as one matrix."""
        self._start_tangent(t)
        tx = self._merge(t)  # (K N, C_in, H, W)
        dtype = np.result_type(tx, self.params["W"])
        X = self._as_matrix(tx, dtype)  # (C_in, H W K N)
        ty = as_images(self._col2im(self._weight_matrix(dtype).T @ X, tx.shape))  # col2im(W2.T @ X)
        self._store_tangent(X=X, input_shape=tx.shape)
        return ty.reshape(t.shape[:2] + ty.shape[1:])

    def jvp_backward(self, dt: np.ndarray) -> tuple[np.ndarray | None, None]:
        """The adjoint of :meth:`jvp`: with dcols = im2col(dt), dW2 = X @ dcols.T added into dL/dW, and
        dt_in = W2 @ dcols (None when the layer needs no input gradient); no second output."""
        cache = self._tangent_cached(dt)
        X = cache["X"]
        dty = images_last(self._merge(dt), np.result_type(X, dt))  # (C_out, OH, OW, K N)
        dcols = self._im2col(dty, cache["input_shape"])  # (C_out kH kW, H W K N)
        self.grads["W"] += (X @ dcols.T).reshape(self.params["W"].shape)  # dW2 = X @ dcols.T
        if not self.needs_input_grad:
            return None, None
        dx = self._as_images(self._weight_matrix() @ dcols, cache["input_shape"])  # dt_in = W2 @ dcols
        return dx.reshape(dt.shape[:2] + dx.shape[1:]), None

    def _geometry(self, height: int, width: int) -> tuple[int, int, int, int]:
        out_h, crop_top = conv_transpose_geometry(height, self.kernel_size, self.stride, self.padding)
        out_w, crop_left = conv_transpose_geometry(width, self.kernel_size, self.stride, self.padding)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"{self!r}: padding leaves no output for a {height}x{width} input.")
        return out_h, out_w, crop_top, crop_left

    # -- layouts: the input as a matrix and back, and the column transforms at this layer's geometry --------

    def _as_matrix(self, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """X: the images x (N, C_in, H, W) as a (C_in, H W N) matrix, column (i W + j) N + n, in ``dtype``."""
        return images_last(x, dtype).reshape(self.in_channels, -1)

    def _as_images(self, X: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of :meth:`_as_matrix`: a (C_in, H W N) matrix as an (N, C_in, H, W) view, not copied."""
        n, _, height, width = input_shape
        return as_images(X.reshape(self.in_channels, height, width, n))

    def _col2im(self, cols: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """col2im(cols): the (C_out kH kW, H W N) columns added into the output they cover, which is
        returned stored images-last, (C_out, OH, OW, N)."""
        n, _, height, width = input_shape
        out_h, out_w, crop_top, crop_left = self._geometry(height, width)
        k = self.kernel_size
        y = np.empty((self.out_channels, out_h, out_w, n), dtype=cols.dtype)
        kernels.col2im(cols, k, k, self.stride, crop_top, crop_left, height, width, y)
        return y

    def _im2col(self, dy: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """dcols = im2col(dy), (C_out kH kW, H W N), of a gradient dy stored images-last, (C_out, OH, OW, N):
        the adjoint of :meth:`_col2im`."""
        n, _, height, width = input_shape
        _, _, crop_top, crop_left = self._geometry(height, width)
        k = self.kernel_size
        dcols = np.empty((self.out_channels * k * k, height * width * n), dtype=dy.dtype)
        kernels.im2col(dy, k, k, self.stride, crop_top, crop_left, height, width, dcols)
        return dcols
