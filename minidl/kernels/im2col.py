"""im2col / col2im: the data movement that turns a convolution of a whole batch into one matrix product.

For an input ``x`` of shape (N, C, H, W) and a kernel of shape (kH, kW), ``cols[r, n * L + p]`` (with
L = out_h * out_w) holds the input value that kernel entry ``r = (c * kH + i) * kW + j`` meets at output
position ``p = oy * out_w + ox`` of image n, namely
``x[n, c, oy * stride + i - pad_top, ox * stride + j - pad_left]`` (zero where that index falls outside
the image). A convolution of the whole batch is then one matrix product, ``W.reshape(F, -1) @ cols``,
of shape (F, N * L): one large GEMM runs much closer to the machine's peak than N small ones.

``col2im`` is the adjoint (transpose) of ``im2col``: it scatters every column entry back to the pixel
it came from, summing where receptive fields overlap. It is the backward pass of ``im2col`` and the
forward pass of a transposed convolution.
"""

from numba import njit, prange


@njit(cache=True, parallel=True)
def im2col(x, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, cols):
    """Unfold image patches into columns.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w : int
        Geometry; bottom and right padding are implied by ``out_h`` and ``out_w``.
    cols : ndarray, shape (C * kernel_h * kernel_w, N * out_h * out_w)
        Output, overwritten.
    """
    n_images, channels, height, width = x.shape
    size = out_h * out_w
    for n in prange(n_images):
        for c in range(channels):
            for i in range(kernel_h):
                for j in range(kernel_w):
                    row = (c * kernel_h + i) * kernel_w + j
                    for oy in range(out_h):
                        iy = oy * stride + i - pad_top
                        base = n * size + oy * out_w
                        if iy < 0 or iy >= height:
                            for ox in range(out_w):
                                cols[row, base + ox] = 0.0
                            continue
                        for ox in range(out_w):
                            ix = ox * stride + j - pad_left
                            if 0 <= ix < width:
                                cols[row, base + ox] = x[n, c, iy, ix]
                            else:
                                cols[row, base + ox] = 0.0


@njit(cache=True, parallel=True)
def col2im(cols, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w, x):
    """Fold columns back into images, summing overlaps (the adjoint of :func:`im2col`).

    Parameters
    ----------
    cols : ndarray, shape (C * kernel_h * kernel_w, N * out_h * out_w)
    kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w : int
        The same geometry that :func:`im2col` was (or would be) called with.
    x : ndarray, shape (N, C, H, W)
        Output, overwritten (zeroed first, then accumulated).
    """
    n_images, channels, height, width = x.shape
    size = out_h * out_w
    for n in prange(n_images):
        for c in range(channels):
            for iy in range(height):
                for ix in range(width):
                    x[n, c, iy, ix] = 0.0
            for i in range(kernel_h):
                for j in range(kernel_w):
                    row = (c * kernel_h + i) * kernel_w + j
                    for oy in range(out_h):
                        iy = oy * stride + i - pad_top
                        if iy < 0 or iy >= height:
                            continue
                        base = n * size + oy * out_w
                        for ox in range(out_w):
                            ix = ox * stride + j - pad_left
                            if 0 <= ix < width:
                                x[n, c, iy, ix] += cols[row, base + ox]
