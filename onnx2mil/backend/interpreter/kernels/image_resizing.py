"""MIL image resizing (iOS15-iOS17 image_resizing.py): upsample/resize (nearest, bilinear), crop,
crop_resize, affine and resample, on the last two (spatial) dims.

Bilinear sampling places output sample ``i`` at the input coordinate the ``sampling_mode`` gives
(the grid formulas in ``resize_bilinear``'s docstring) and interpolates between its two neighbours.
"""
from __future__ import annotations

import numpy as np

from .registry import kernel


def _wide(x):
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _grid(size_in: int, size_out: int, mode: str) -> np.ndarray:
    """Input coordinates of the ``size_out`` samples, for a sampling mode of resize_bilinear."""
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            points = np.full(1, (size_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            points = i * (size_in - 1) / (size_out - 1)
    elif mode == "DEFAULT":
        points = i * size_in / size_out
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        points = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        points = i * spacing + 0.5 * spacing - 0.5
    else:
        raise ValueError(f"sampling_mode '{mode}' is not a MIL sampling mode")
    return np.clip(points, 0, size_in - 1)


def _interpolate_axis(x: np.ndarray, axis: int, points: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x`` along ``axis`` at in-range coordinates ``points``."""
    size = x.shape[axis]
    low = np.clip(np.floor(points).astype(np.int64), 0, size - 1)
    high = np.clip(low + 1, 0, size - 1)
    frac = (points - low).reshape([-1 if d == axis % x.ndim else 1 for d in range(x.ndim)])
    return np.take(x, low, axis=axis) * (1 - frac) + np.take(x, high, axis=axis) * frac


def _bilinear(x, height: int, width: int, mode_h: str, mode_w: str) -> np.ndarray:
    x = _wide(x).astype(np.float64)
    y = _interpolate_axis(x, -2, _grid(x.shape[-2], height, mode_h))
    return _interpolate_axis(y, -1, _grid(x.shape[-1], width, mode_w))


def _nearest_by_ratio(x, height: int, width: int) -> np.ndarray:
    """Nearest neighbour with ``index = floor(i * in / out)``."""
    x = np.asarray(x)
    rows = np.minimum(np.floor(np.arange(height) * x.shape[-2] / height).astype(np.int64), x.shape[-2] - 1)
    cols = np.minimum(np.floor(np.arange(width) * x.shape[-1] / width).astype(np.int64), x.shape[-1] - 1)
    return np.take(np.take(x, rows, axis=-2), cols, axis=-1)


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(op, x, scale_factor_height=1, scale_factor_width=1):
    x = np.asarray(x)
    height = int(np.floor(x.shape[-2] * float(scale_factor_height)))
    width = int(np.floor(x.shape[-1] * float(scale_factor_width)))
    return _nearest_by_ratio(x, height, width)


@kernel("resize_nearest_neighbor")
def resize_nearest_neighbor(op, x, target_size_height, target_size_width):
    return _nearest_by_ratio(x, int(target_size_height), int(target_size_width))


@kernel("upsample_bilinear")
def upsample_bilinear(op, x, scale_factor_height=1, scale_factor_width=1, align_corners=True,
                      half_pixel_centers=None):
    x = np.asarray(x)
    height = int(np.floor(x.shape[-2] * float(scale_factor_height)))
    width = int(np.floor(x.shape[-1] * float(scale_factor_width)))
    if half_pixel_centers is None:
        half_pixel_centers = not align_corners
    if align_corners:
        mode = "STRICT_ALIGN_CORNERS"
    else:
        mode = "UNALIGN_CORNERS" if half_pixel_centers else "DEFAULT"
    return _bilinear(x, height, width, mode, mode)


@kernel("resize_bilinear")
def resize_bilinear(op, x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    return _bilinear(x, int(target_size_height), int(target_size_width), sampling_mode, sampling_mode)


@kernel("resize")
def resize(op, x, shape, resized_dims, interpolation_mode="LINEAR", sampling_mode="DEFAULT"):
    x = np.asarray(x)
    shape = [int(s) for s in np.atleast_1d(shape)]
    resized_dims = int(resized_dims)
    out = x.astype(np.float64) if interpolation_mode == "LINEAR" else x
    for k in range(1, resized_dims + 1):
        axis = x.ndim - k
        size = shape[len(shape) - k] or x.shape[axis]
        if interpolation_mode == "LINEAR":
            out = _interpolate_axis(out, axis, _grid(x.shape[axis], size, sampling_mode))
        elif interpolation_mode == "NEAREST_NEIGHBOR":
            points = _grid(x.shape[axis], size, sampling_mode)
            out = np.take(out, np.clip(np.floor(points + 0.5).astype(np.int64), 0, x.shape[axis] - 1), axis=axis)
        else:
            raise ValueError(f"resize '{op.name}': interpolation_mode '{interpolation_mode}'")
    return out


@kernel("crop")
def crop(op, x, crop_height, crop_width):
    x = np.asarray(x)
    top, bottom = (int(v) for v in np.atleast_1d(crop_height))
    left, right = (int(v) for v in np.atleast_1d(crop_width))
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


def _box_corners(box, mode: str):
    """(h_start, w_start, h_end, w_end) of one box in a box_coordinate_mode."""
    a, b, c, d = (float(v) for v in box)
    if mode == "CORNERS_HEIGHT_FIRST":
        return a, b, c, d
    if mode == "CORNERS_WIDTH_FIRST":
        return b, a, d, c
    if mode == "CENTER_SIZE_HEIGHT_FIRST":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if mode == "CENTER_SIZE_WIDTH_FIRST":
        return b - d / 2, a - c / 2, b + d / 2, a + c / 2
    raise ValueError(f"box_coordinate_mode '{mode}' is not a MIL box mode")


def _box_points(start: float, end: float, count: int, mode: str) -> np.ndarray:
    """Sample coordinates inside [start, end] (reversed boxes flip), by sampling mode."""
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if count == 1:
            return np.array([(start + end) / 2 if mode == "ALIGN_CORNERS" else start])
        return start + np.arange(count) * (end - start) / (count - 1)
    span = end - start + (1 if end >= start else -1)
    i = np.arange(count, dtype=np.float64)
    if mode == "DEFAULT":
        return start + i * span / count
    if mode == "OFFSET_CORNERS":
        return start + (i + 0.5) * (end - start) / count
    if mode == "UNALIGN_CORNERS":
        return start + (i + 0.5) * span / count - 0.5 * np.sign(span)
    raise ValueError(f"sampling_mode '{mode}' is not a MIL sampling mode")


def _sample_points(image, rows, cols, pad_value):
    """Bilinear samples of ``image`` [C, H, W] at the rows x cols grid; pad_value outside."""
    height, width = image.shape[-2:]

    def taps(points, size):
        low = np.floor(points).astype(np.int64)
        frac = points - low
        inside = (points >= 0) & (points <= size - 1)
        return np.clip(low, 0, size - 1), np.clip(low + 1, 0, size - 1), frac, inside

    r0, r1, fr, rin = taps(rows, height)
    c0, c1, fc, cin = taps(cols, width)
    top = image[:, r0][:, :, c0] * (1 - fc) + image[:, r0][:, :, c1] * fc
    bottom = image[:, r1][:, :, c0] * (1 - fc) + image[:, r1][:, :, c1] * fc
    out = top * (1 - fr)[:, None] + bottom * fr[:, None]
    return np.where(rin[:, None] & cin[None, :], out, pad_value)


def _crop_one(image, box, target_height, target_width, normalized_coordinates, spatial_scale,
              box_coordinate_mode, sampling_mode, pad_value):
    h0, w0, h1, w1 = (v * float(spatial_scale) for v in _box_corners(box, box_coordinate_mode))
    height, width = image.shape[-2:]
    if normalized_coordinates:
        h0, h1, w0, w1 = h0 * (height - 1), h1 * (height - 1), w0 * (width - 1), w1 * (width - 1)
    rows = _box_points(h0, h1, int(target_height), sampling_mode)
    cols = _box_points(w0, w1, int(target_width), sampling_mode)
    return _sample_points(image, rows, cols, pad_value)


@kernel("crop_resize")
def crop_resize(op, x, roi=None, boxes=None, box_indices=None, target_height=1, target_width=1,
                normalized_coordinates=False, spatial_scale=1.0, box_coordinate_mode="CORNERS_HEIGHT_FIRST",
                sampling_mode="DEFAULT", pad_value=0.0):
    x = _wide(x).astype(np.float64)
    args = (target_height, target_width, normalized_coordinates, spatial_scale, box_coordinate_mode,
            sampling_mode, pad_value)
    if boxes is not None:  # iOS17: boxes [N, 4], box_indices [N] -> [N, C, th, tw]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        indices = np.arange(len(boxes)) if box_indices is None else np.asarray(box_indices).astype(np.int64)
        return np.stack([_crop_one(x[int(b)], box, *args) for box, b in zip(boxes, indices)])
    roi = np.asarray(roi, np.float64).reshape(np.shape(roi)[0], -1)
    if roi.shape[1] == 5:  # first value is the batch index -> [N, 1, C, th, tw]
        return np.stack([_crop_one(x[int(r[0])], r[1:], *args)[None] for r in roi])
    return np.stack([np.stack([_crop_one(image, r, *args) for image in x]) for r in roi])


def _to_pixels(coord, size: int, coordinates_mode: str, align_corners: bool):
    if coordinates_mode == "unnormalized":
        return coord
    if coordinates_mode == "normalized_minus_one_to_one":
        return (coord + 1) / 2 * (size - 1) if align_corners else ((coord + 1) * size - 1) / 2
    if coordinates_mode == "normalized_zero_to_one":
        return coord * (size - 1) if align_corners else coord * size - 0.5
    raise ValueError(f"coordinates_mode '{coordinates_mode}' is not a MIL coordinates mode")


def _reflect(p, low: float, high: float):
    """Reflect coordinates into [low, high] (mirror at both ends)."""
    span = high - low
    if span <= 0:
        return np.zeros_like(p) + low
    q = np.mod(p - low, 2 * span)
    return low + np.where(q > span, 2 * span - q, q)


def _grid_sample(x, px, py, sampling_mode: str, padding_mode: str, padding_value: float):
    """x [B, C, H, W]; px, py [B, H2, W2] pixel coordinates -> [B, C, H2, W2]."""
    _, _, height, width = x.shape
    if padding_mode == "border":
        px, py = np.clip(px, 0, width - 1), np.clip(py, 0, height - 1)
    elif padding_mode == "reflection":
        px, py = _reflect(px, 0, width - 1), _reflect(py, 0, height - 1)
    elif padding_mode == "symmetric":
        px = np.clip(_reflect(px, -0.5, width - 0.5), 0, width - 1)
        py = np.clip(_reflect(py, -0.5, height - 0.5), 0, height - 1)
    elif padding_mode != "constant":
        raise ValueError(f"padding_mode '{padding_mode}' is not a MIL resample padding mode")
    batch = np.arange(x.shape[0])[:, None, None]

    def tap(rows, cols):
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        values = x[batch, :, np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)]  # [B, H2, W2, C]
        return np.where(inside[..., None], values, padding_value)

    if sampling_mode == "nearest":
        out = tap(np.rint(py).astype(np.int64), np.rint(px).astype(np.int64))
    elif sampling_mode == "bilinear":
        x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
        fx, fy = (px - x0)[..., None], (py - y0)[..., None]
        out = ((tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx) * (1 - fy)
               + (tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx) * fy)
    else:
        raise ValueError(f"sampling_mode '{sampling_mode}' is not a MIL resample mode")
    return np.moveaxis(out, -1, 1)


@kernel("resample")
def resample(op, x, coordinates, sampling_mode, padding_mode, padding_value, coordinates_mode, align_corners):
    x = _wide(x).astype(np.float64)
    coordinates = np.asarray(coordinates).astype(np.float64)
    height, width = x.shape[-2:]
    px = _to_pixels(coordinates[..., 0], width, coordinates_mode, bool(align_corners))
    py = _to_pixels(coordinates[..., 1], height, coordinates_mode, bool(align_corners))
    return _grid_sample(x, px, py, sampling_mode, padding_mode, float(padding_value))


@kernel("affine")
def affine(op, x, transform_matrix, output_height, output_width, sampling_mode, padding_mode,
           padding_value, coordinates_mode, align_corners):
    x = _wide(x).astype(np.float64)
    matrix = np.broadcast_to(np.asarray(transform_matrix, np.float64), (x.shape[0], 6))
    height, width = int(output_height), int(output_width)
    if coordinates_mode != "normalized_minus_one_to_one":
        raise ValueError(f"affine '{op.name}': coordinates_mode '{coordinates_mode}'")
    # output grid in normalized [-1, 1] coordinates, then x' = a0 x + a1 y + a2, y' = b0 x + b1 y + b2
    gx = _to_normalized(width, bool(align_corners))[None, None, :]
    gy = _to_normalized(height, bool(align_corners))[None, :, None]
    a = matrix[:, :, None, None]
    sx = a[:, 0] * gx + a[:, 1] * gy + a[:, 2]
    sy = a[:, 3] * gx + a[:, 4] * gy + a[:, 5]
    px = _to_pixels(sx, x.shape[-1], coordinates_mode, bool(align_corners))
    py = _to_pixels(sy, x.shape[-2], coordinates_mode, bool(align_corners))
    return _grid_sample(x, px, py, sampling_mode, padding_mode, float(padding_value))


def _to_normalized(size: int, align_corners: bool) -> np.ndarray:
    """Normalized [-1, 1] coordinates of the ``size`` output pixels."""
    if size == 1:
        return np.zeros(1)
    i = np.arange(size, dtype=np.float64)
    return -1 + 2 * i / (size - 1) if align_corners else (2 * i + 1) / size - 1
