"""Every operator x dtype x layout: dtype and shape kept, input untouched, values against a
direct reference computation (plain numpy, or the OpenCV call itself where the operator is only
a wrapper that scales parameters)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import napari_vsr.classic as C
from napari_vsr.errors import ParameterError, UnsupportedDtypeError

DTYPES = (np.uint8, np.uint16, np.float32)
TOP = {np.uint8: 255.0, np.uint16: 65535.0, np.float32: 1.0}
LAYOUTS = ("gray", "rgb", "rgba")


# --- reference helpers ------------------------------------------------------------------------
def cast(values: np.ndarray, dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def pad(x: np.ndarray, r: int, mode: str = "reflect") -> np.ndarray:
    """Pad the two spatial axes (numpy "reflect" is OpenCV's reflect-101)."""
    return np.pad(x, [(r, r), (r, r)] + [(0, 0)] * (x.ndim - 2), mode=mode)


def correlate(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D correlation of each channel with an odd square kernel, reflect-101 border, float64."""
    k = kernel.shape[0]
    r = k // 2
    p = pad(x.astype(np.float64), r)
    h, w = x.shape[:2]
    out = np.zeros(x.shape, np.float64)
    for i in range(k):
        for j in range(k):
            out += kernel[i, j] * p[i : i + h, j : j + w]
    return out


def assert_close(out: np.ndarray, ref: np.ndarray, dtype, *, int_tol: float = 0, rel: float = 1e-5):
    assert out.dtype == np.dtype(dtype)
    assert out.shape == ref.shape
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    if np.dtype(dtype).kind == "f":
        assert diff.max() <= rel * max(1.0, float(np.abs(ref).max())), diff.max()
    else:
        assert diff.max() <= int_tol, diff.max()


def resize_weights(n_in: int, n_out: int, taps, weight) -> np.ndarray:
    """Dense (n_out, n_in) interpolation matrix with pixel-centre alignment and clamped indices."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = (o + 0.5) * scale - 0.5
        base = int(np.floor(src))
        f = src - base
        ws = []
        for t in taps:
            ws.append((min(max(base + t, 0), n_in - 1), weight(f - t)))
        total = sum(w for _, w in ws)
        for i, w in ws:
            m[o, i] += w / total
    return m


def ref_resize(x: np.ndarray, out_h: int, out_w: int, taps, weight) -> np.ndarray:
    wy = resize_weights(x.shape[0], out_h, taps, weight)
    wx = resize_weights(x.shape[1], out_w, taps, weight)
    return np.einsum("ai,bj,ij...->ab...", wy, wx, x.astype(np.float64))


def keys_cubic(d: float, a: float = -0.75) -> float:
    d = abs(d)
    if d <= 1:
        return (a + 2) * d**3 - (a + 3) * d**2 + 1
    if d < 2:
        return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a
    return 0.0


def lanczos4(d: float) -> float:
    return float(np.sinc(d) * np.sinc(d / 4)) if abs(d) < 4 else 0.0


# --- generic properties: every op x dtype x layout ------------------------------------------
FRAME_CASES = {
    "laplacian_sharpen": {},
    "unsharp_mask": {"radius": 1.0, "amount": 1.5},
    "mean_filter": {"size": 3},
    "gaussian_blur": {"ksize": 5},
    "median_filter": {"size": 3},
    "median_filter_7": {"size": 7},
    "bilateral_filter": {},
    "nl_means": {"search_size": 11},
    "resize": {"factor": 2},
    "resize_size": {"size": (12, 15), "interpolation": "area"},
    "equalize_hist": {},
    "clahe": {"tile_grid": (2, 2)},
    "adjust_gamma": {"gamma": 0.5},
    "sobel_magnitude": {},
    "canny": {},
}


def _op(case: str):
    name = case if case in C.OPERATORS else case.rsplit("_", 1)[0]
    return C.OPERATORS[name].func


def test_every_operator_has_a_case():
    covered = {c if c in C.OPERATORS else c.rsplit("_", 1)[0] for c in FRAME_CASES}
    temporal = {n for n, s in C.OPERATORS.items() if s.temporal}
    assert covered | temporal == set(C.OPERATORS)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", list(FRAME_CASES))
def test_frame_op_keeps_dtype_shape_and_input(case, dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    before = image.copy()
    out = _op(case)(image, **FRAME_CASES[case])
    assert np.array_equal(image, before), "input was modified"
    assert out.dtype == image.dtype
    assert out is not image and not np.shares_memory(out, image)
    if case == "resize":
        assert out.shape == (48, 64) + image.shape[2:]
    elif case == "resize_size":
        assert out.shape == (12, 15) + image.shape[2:]
    else:
        assert out.shape == image.shape
    if dtype == np.float32:
        assert np.isfinite(out).all()


@pytest.mark.parametrize("case", list(FRAME_CASES))
def test_single_channel_axis_is_kept_and_equals_gray(case, make_frame):
    image = make_frame(np.uint16, "gray")
    gray = _op(case)(image, **FRAME_CASES[case])
    one = _op(case)(image[..., np.newaxis], **FRAME_CASES[case])
    np.testing.assert_array_equal(one, gray[..., np.newaxis])


@pytest.mark.parametrize("name", ["temporal_median", "temporal_mean"])
def test_temporal_single_channel_axis(name, make_stack):
    stack = make_stack(np.uint8, "gray", frames=4)
    op = C.OPERATORS[name].func
    np.testing.assert_array_equal(op(stack[..., np.newaxis], 2), op(stack, 2)[..., np.newaxis])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", list(FRAME_CASES))
def test_channel_axis_first_matches_channels_last(case, dtype, make_frame):
    image = make_frame(dtype, "rgb")
    last = _op(case)(image, **FRAME_CASES[case])
    first = _op(case)(np.moveaxis(image, -1, 0).copy(), **FRAME_CASES[case], channel_axis=0)
    assert first.shape == (3,) + last.shape[:2]
    np.testing.assert_array_equal(np.moveaxis(first, 0, -1), last)


@pytest.mark.parametrize("bad", [np.float64, np.int16, np.bool_], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(C.OPERATORS))
def test_unsupported_dtype_is_named(name, bad):
    spec = C.OPERATORS[name]
    image = np.zeros((3, 8, 8) if spec.temporal else (8, 8), dtype=bad)
    kwargs = {"factor": 2} if name == "resize" else {}
    with pytest.raises(UnsupportedDtypeError, match=rf"{name}: dtype {np.dtype(bad)}") as info:
        spec.func(image, **kwargs)
    assert isinstance(info.value, TypeError)


def test_bad_parameters_name_the_parameter_and_the_allowed_values():
    image = np.zeros((8, 8), np.uint8)
    with pytest.raises(ParameterError, match=r"'ksize' = 4 .*odd integer in \[1, 99\]"):
        C.gaussian_blur(image, ksize=4)
    with pytest.raises(ParameterError, match=r"'interpolation' = 'cubic'.*'bicubic'"):
        C.resize(image, factor=2, interpolation="cubic")
    with pytest.raises(ParameterError, match="exactly one of 'factor' and 'size'"):
        C.resize(image)
    with pytest.raises(ParameterError, match="'low'.*must not exceed 'high'"):
        C.canny(image, low=0.5, high=0.1)
    with pytest.raises(ParameterError, match=r"'gamma' = 0 .*\(0, 10\]"):
        C.adjust_gamma(image, gamma=0)
    with pytest.raises(ParameterError, match="'tile_grid'"):
        C.clahe(image, tile_grid=(8,))
    with pytest.raises(ParameterError, match="'l2_gradient' = 1"):
        C.canny(image, l2_gradient=1)
    with pytest.raises(TypeError):
        C.gaussian_blur(image, kernel=3)


def test_bad_layouts():
    with pytest.raises(ParameterError, match=r"frame \(H, W\[, C\]\)"):
        C.gaussian_blur(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ParameterError, match="has no channel axis"):
        C.gaussian_blur(np.zeros((8, 8), np.uint8), channel_axis=0)
    with pytest.raises(ParameterError, match="out of range"):
        C.gaussian_blur(np.zeros((8, 8, 3), np.uint8), channel_axis=5)
    with pytest.raises(ParameterError, match=r"stack \(T, H, W\[, C\]\)"):
        C.temporal_median(np.zeros((8, 8), np.uint8))


# --- values against references -----------------------------------------------------------
both = pytest.mark.parametrize(
    "dtype,layout",
    [(d, lay) for d in DTYPES for lay in LAYOUTS],
    ids=lambda v: np.dtype(v).name if not isinstance(v, str) else v,
)


@both
def test_laplacian_sharpen_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)
    assert_close(C.laplacian_sharpen(image), cast(correlate(image, kernel), dtype), dtype)
    half = np.array([[0, -0.5, 0], [-0.5, 3, -0.5], [0, -0.5, 0]])
    assert_close(
        C.laplacian_sharpen(image, 0.5), cast(correlate(image, half), dtype), dtype, int_tol=1
    )


@both
def test_unsharp_mask_values(dtype, layout, make_frame):
    import scipy.ndimage as ndi

    image = make_frame(dtype, layout)
    x = image.astype(np.float64)
    sigma = (1.2, 1.2) + (0,) * (image.ndim - 2)
    blurred = ndi.gaussian_filter(x, sigma, mode="mirror", truncate=4.0)
    ref = cast(x + 1.5 * (x - blurred), dtype)
    assert_close(C.unsharp_mask(image, radius=1.2, amount=1.5), ref, dtype, int_tol=1, rel=1e-4)
    # a threshold above every detail leaves the image unchanged
    np.testing.assert_array_equal(C.unsharp_mask(image, threshold=1.0, amount=3.0), image)


@both
def test_mean_filter_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    ref = cast(correlate(image, np.full((3, 3), 1 / 9)), dtype)
    assert_close(C.mean_filter(image, 3), ref, dtype, int_tol=1)


@both
def test_gaussian_blur_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    k5 = np.array([1, 4, 6, 4, 1], float) / 16  # OpenCV's fixed kernel for ksize 5, sigma 0
    assert_close(
        C.gaussian_blur(image, 5), cast(correlate(image, np.outer(k5, k5)), dtype), dtype, int_tol=1
    )
    g = np.exp(-(np.arange(-3, 4) ** 2) / (2 * 1.3**2))
    g /= g.sum()
    ref = cast(correlate(image, np.outer(g, g)), dtype)
    assert_close(C.gaussian_blur(image, 7, 1.3), ref, dtype, int_tol=1)


@both
@pytest.mark.parametrize("size", [3, 5, 7])
def test_median_filter_values(dtype, layout, size, make_frame):
    image = make_frame(dtype, layout)
    r = size // 2
    p = pad(image, r, mode="edge")
    h, w = image.shape[:2]
    shifted = [p[i : i + h, j : j + w] for i in range(size) for j in range(size)]
    ref = np.median(np.stack(shifted), axis=0).astype(dtype)  # odd count: an element, exact
    assert_close(C.median_filter(image, size), ref, dtype)


def _ref_bilateral(x: np.ndarray, diameter: int, sigma_color: float, sigma_space: float):
    """OpenCV's bilateral: disk of radius d//2, colour distance = L1 over the channels."""
    x = x.astype(np.float64)
    gray = x.ndim == 2
    if gray:
        x = x[..., None]
    r = max(diameter // 2, 1)
    p = pad(x, r)
    h, w = x.shape[:2]
    num = np.zeros_like(x)
    den = np.zeros(x.shape[:2])
    for i in range(-r, r + 1):
        for j in range(-r, r + 1):
            if i * i + j * j > r * r:
                continue
            nb = p[r + i : r + i + h, r + j : r + j + w]
            dist = np.abs(nb - x).sum(axis=-1)
            wgt = np.exp(-(i * i + j * j) / (2 * sigma_space**2)) * np.exp(
                -(dist**2) / (2 * sigma_color**2)
            )
            num += wgt[..., None] * nb
            den += wgt
    out = num / den[..., None]
    return out[..., 0] if gray else out


@both
def test_bilateral_filter_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    top = TOP[dtype]
    # RGBA and other channel counts are filtered channel by channel
    planes = [image] if layout != "rgba" else [image[..., c] for c in range(4)]
    refs = [_ref_bilateral(p, 5, 0.1 * top, 2.0) for p in planes]
    ref = refs[0] if layout != "rgba" else np.stack(refs, axis=-1)
    # float32 and uint16 go through OpenCV's float path, whose colour weights come from a table
    tol = 1 if dtype == np.uint8 else 0.01 * top
    out = C.bilateral_filter(image, 5, 0.1, 2.0)
    assert out.dtype == image.dtype
    assert np.abs(out.astype(np.float64) - ref).max() <= tol


@both
def test_nl_means_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    out = C.nl_means(image, h=0.05, template_size=5, search_size=9)
    if dtype == np.float32:
        q = np.rint(image.astype(np.float64) * 65535).astype(np.uint16)  # range is [0, 1]
        direct = cv2.fastNlMeansDenoising(
            q, np.array([0.05 * 65535], np.float32), None, 5, 9, cv2.NORM_L1
        )
        # one 16-bit level of quantisation rounding is allowed
        assert_close(out, (direct / 65535.0).astype(np.float32), dtype, rel=1.01 / 65535)
    else:
        direct = cv2.fastNlMeansDenoising(
            image, np.array([0.05 * TOP[dtype]], np.float32), None, 5, 9, cv2.NORM_L1
        )
        np.testing.assert_array_equal(out, direct)


def test_nl_means_reduces_noise(rng):
    clean = np.tile(np.linspace(0.2, 0.8, 48, dtype=np.float32), (40, 1))
    noisy = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    out = C.nl_means(noisy, h=0.06)
    assert np.abs(out - clean).mean() < 0.5 * np.abs(noisy - clean).mean()


@both
@pytest.mark.parametrize(
    "interpolation,factor,taps,weight,int_tol",
    [
        ("bilinear", 2, (0, 1), lambda d: max(0.0, 1 - abs(d)), 1),
        ("bicubic", 2, (-1, 0, 1, 2), keys_cubic, 1),
        ("bicubic", 4, (-1, 0, 1, 2), keys_cubic, 1),
        ("lanczos", 3, tuple(range(-3, 5)), lanczos4, 1),
    ],
)
def test_resize_values(dtype, layout, interpolation, factor, taps, weight, int_tol, make_frame):
    image = make_frame(dtype, layout)
    h, w = image.shape[:2]
    out = C.resize(image, factor=factor, interpolation=interpolation)
    ref = cast(ref_resize(image, h * factor, w * factor, taps, weight), dtype)
    assert_close(out, ref, dtype, int_tol=int_tol, rel=1e-4)


@both
def test_resize_nearest_and_area(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    up = C.resize(image, factor=3, interpolation="nearest")
    np.testing.assert_array_equal(up, np.repeat(np.repeat(image, 3, axis=0), 3, axis=1))
    down = C.resize(image, size=(12, 16), interpolation="area")
    blocks = image.astype(np.float64).reshape((12, 2, 16, 2) + image.shape[2:]).mean(axis=(1, 3))
    assert_close(down, cast(blocks, dtype), dtype, int_tol=1)
    assert C.resize(image, factor=1.5).shape[:2] == (36, 48)
    assert C.resize(image, factor=0.3).shape[:2] == (7, 10)  # round(7.2), round(9.6)


def _ref_equalize(plane: np.ndarray, levels: int) -> np.ndarray:
    values, counts = np.unique(plane, return_counts=True)
    cdf = np.cumsum(counts)
    first = counts[0]
    mapped = np.rint((cdf - first) / (plane.size - first) * (levels - 1))
    return mapped[np.searchsorted(values, plane)]


@both
def test_equalize_hist_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    if dtype == np.float32:
        q = np.rint(np.clip(image.astype(np.float64), 0, 1) * 65535)
        levels, source = 65536, q
    else:
        levels, source = int(TOP[dtype]) + 1, image
    planes = [source] if layout == "gray" else [source[..., c] for c in range(source.shape[-1])]
    ref = [_ref_equalize(p, levels) for p in planes]
    ref = ref[0] if layout == "gray" else np.stack(ref, axis=-1)
    if dtype == np.float32:
        ref = ref / 65535
    out = C.equalize_hist(image)
    assert_close(out, cast(ref, dtype), dtype, int_tol=1, rel=1.5 / 65535)
    if dtype != np.float32:  # the full range is used
        assert out.min() == 0 and out.max() == TOP[dtype]


def _cv_clahe(image8: np.ndarray, clip: float, rows: int, cols: int) -> np.ndarray:
    tool = cv2.createCLAHE(clipLimit=clip, tileGridSize=(cols, rows))
    if image8.ndim == 2:
        return tool.apply(image8)
    return np.stack(
        [tool.apply(np.ascontiguousarray(image8[..., c])) for c in range(image8.shape[-1])], -1
    )


@both
def test_clahe_matches_opencv(dtype, layout, make_frame):
    """uint8 is OpenCV itself; uint16/float32 (OpenCV's algorithm with 256 bins and
    interpolated mappings) agree with it on 8-bit data to within the rounding of its tables."""
    image8 = make_frame(np.uint8, layout)
    image = {
        np.uint8: image8,
        np.uint16: image8.astype(np.uint16) * 257,
        np.float32: image8.astype(np.float32) / 255,
    }[dtype]
    ref = _cv_clahe(image8, 40.0, 2, 4)
    out = C.clahe(image, clip_limit=40.0, tile_grid=(2, 4))
    assert out.dtype == image.dtype
    diff = np.abs(out.astype(np.float64) * (255 / TOP[dtype]) - ref)
    assert diff.max() <= (0 if dtype == np.uint8 else 1.0 + 1e-6)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32], ids=lambda d: np.dtype(d).name)
def test_clahe_16bit_clip_limit_means_what_it_means_for_8bit(dtype, sample_frames_dir):
    """OpenCV's own 16-bit CLAHE would clip at >= 1 count of 65536 bins (i.e. hardly at all);
    ours limits contrast like the 8-bit version."""
    image8 = cv2.imread(str(sample_frames_dir / "00000003.png"), cv2.IMREAD_GRAYSCALE)
    image = (
        image8.astype(np.uint16) * 257 if dtype == np.uint16 else image8.astype(np.float32) / 255
    )
    ref = _cv_clahe(image8, 2.0, 8, 8)
    out = C.clahe(image, 2.0, (8, 8)).astype(np.float64) * (255 / TOP[dtype])
    assert np.abs(out - ref).mean() < 1.5  # OpenCV spreads the clipped residual unevenly
    opencv16 = cv2.createCLAHE(2.0, (8, 8)).apply(image8.astype(np.uint16) * 257) / 257
    assert np.abs(opencv16 - ref).mean() > 3 * np.abs(out - ref).mean()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_clahe_raises_local_contrast(dtype, rng):
    top = TOP[dtype]
    x = 0.4 + 0.1 * np.tile(np.linspace(0, 1, 64), (64, 1)) + 0.02 * rng.random((64, 64))
    image = cast(x * top, dtype) if dtype != np.float32 else x.astype(np.float32)
    out = C.clahe(image, clip_limit=4.0, tile_grid=(4, 4))
    assert out.astype(np.float64).std() > 1.5 * image.astype(np.float64).std()
    assert out.max() <= top


@both
def test_adjust_gamma_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    top = TOP[dtype]
    for gamma in (0.5, 2.2):
        ref = top * (np.clip(image.astype(np.float64), 0, top) / top) ** gamma
        assert_close(C.adjust_gamma(image, gamma), cast(ref, dtype), dtype, rel=1e-6)
    np.testing.assert_array_equal(C.adjust_gamma(image, 1.0), image)


@both
def test_sobel_magnitude_values(dtype, layout, make_frame):
    image = make_frame(dtype, layout)
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float) / 8
    dx, dy = correlate(image, kx), correlate(image, kx.T)
    ref = cast(np.sqrt(dx**2 + dy**2), dtype)
    assert_close(C.sobel_magnitude(image), ref, dtype, int_tol=1, rel=1e-5)


def test_sobel_magnitude_is_in_intensity_per_pixel():
    ramp = np.tile(np.arange(32, dtype=np.float32) * 0.01, (16, 1))
    mag = C.sobel_magnitude(ramp)
    np.testing.assert_allclose(mag[:, 1:-1], 0.01, rtol=1e-4)


@both
@pytest.mark.parametrize("aperture,l2", [(3, False), (3, True), (5, True)])
def test_canny_matches_opencv_on_the_8bit_scale(dtype, layout, aperture, l2, make_frame):
    image8 = make_frame(np.uint8, layout)
    image = {
        np.uint8: image8,
        np.uint16: image8.astype(np.uint16) * 257,
        np.float32: image8.astype(np.float32) / 255,
    }[dtype]
    planes = (
        [image8]
        if layout == "gray"
        else [np.ascontiguousarray(image8[..., c]) for c in range(image8.shape[-1])]
    )
    low, high = 0.2, 0.6
    ref = [
        cv2.Canny(p, low * 255, high * 255, apertureSize=aperture, L2gradient=l2) for p in planes
    ]
    ref = ref[0] if layout == "gray" else np.stack(ref, axis=-1)
    out = C.canny(image, low, high, aperture=aperture, l2_gradient=l2)
    assert out.dtype == image.dtype
    assert set(np.unique(out)) <= {0, TOP[dtype]}
    np.testing.assert_array_equal(out > 0, ref > 0)
    assert (out > 0).any()


@both
@pytest.mark.parametrize("radius", [0, 1, 2, 4])
def test_temporal_ops_values(dtype, layout, radius, make_stack):
    stack = make_stack(dtype, layout, frames=9)
    before = stack.copy()
    for op, reduce in ((C.temporal_median, np.median), (C.temporal_mean, np.mean)):
        out = op(stack, radius)
        np.testing.assert_array_equal(stack, before)
        assert out.dtype == stack.dtype and out.shape == stack.shape
        assert not np.shares_memory(out, stack)
        ref = np.stack(
            [
                reduce(stack[max(0, t - radius) : t + radius + 1].astype(np.float64), axis=0)
                for t in range(len(stack))
            ]
        )
        assert_close(out, cast(ref, dtype), dtype, rel=1e-6)


@pytest.mark.parametrize("name", ["temporal_median", "temporal_mean"])
def test_temporal_channel_axis(name, make_stack):
    stack = make_stack(np.uint16, "rgb", frames=5)
    op = C.OPERATORS[name].func
    moved = op(np.moveaxis(stack, -1, 1).copy(), 2, channel_axis=1)  # (T, C, H, W)
    np.testing.assert_array_equal(np.moveaxis(moved, 1, -1), op(stack, 2))
