"""Pipelines: the seed preset bit for bit, recipes through JSON/YAML, validation messages, and
the uint16 microscopy stack through denoise + CLAHE."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import yaml

import napari_vsr.classic as C
from napari_vsr.classic import PRESETS, Pipeline, get_preset
from napari_vsr.errors import ParameterError, SourceNotFoundError


def seed_method(image: np.ndarray) -> np.ndarray:
    """The original desktop tool's traditional method, call for call."""
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    image = cv2.filter2D(image, -1, kernel)
    image = cv2.GaussianBlur(image, (5, 5), 0)
    height, width = image.shape[:2]
    return cv2.resize(image, (int(width * 4), int(height * 4)), interpolation=cv2.INTER_CUBIC)


def test_seed_preset_is_bit_exact_on_a_real_frame(sample_frames_dir):
    frame = cv2.imread(str(sample_frames_dir / "00000000.png"), cv2.IMREAD_UNCHANGED)
    out = get_preset("seed").apply(frame)
    assert out.dtype == np.uint8 and out.shape == (frame.shape[0] * 4, frame.shape[1] * 4, 3)
    np.testing.assert_array_equal(out, seed_method(frame))


@pytest.mark.parametrize("shape", [(37, 53, 3), (29, 31)])
def test_seed_preset_is_bit_exact_on_random_uint8(shape, rng):
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(get_preset("seed").apply(frame), seed_method(frame))
    stack = rng.integers(0, 256, (3,) + shape, dtype=np.uint8)
    out = get_preset("seed").apply_stack(stack)
    np.testing.assert_array_equal(out, np.stack([seed_method(f) for f in stack]))


def test_seed_steps_and_properties():
    seed = get_preset("seed")
    assert [s.op for s in seed.steps] == ["laplacian_sharpen", "gaussian_blur", "resize"]
    assert seed.scale == 4 and seed.context == 0 and not seed.temporal
    assert seed.output_size(360, 640) == (1440, 2560)


def test_every_preset_runs_and_keeps_dtype(rng):
    frame = rng.integers(0, 65536, (20, 24), dtype=np.uint16)
    for name, preset in PRESETS.items():
        out = preset.apply(frame)
        assert out.dtype == np.uint16, name
        assert out.shape == preset.output_size(20, 24), name
        assert preset.description, name


def test_get_preset_unknown_lists_known_names():
    with pytest.raises(ParameterError, match="unknown preset 'sharp'; known presets: seed, "):
        get_preset("sharp")


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
@pytest.mark.parametrize("name", list(PRESETS))
def test_recipe_round_trip(name, suffix, tmp_path):
    preset = PRESETS[name]
    path = tmp_path / f"mine{suffix}"
    preset.to_file(path)
    text = path.read_text()
    data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    assert data["steps"][0]["op"] == preset.steps[0].op
    loaded = Pipeline.from_file(path)
    assert loaded == preset
    assert loaded.to_dict() == preset.to_dict()


def test_hand_written_yaml_recipe_fills_defaults_and_runs(tmp_path, rng):
    path = tmp_path / "soft-x2.yaml"
    path.write_text(
        "description: blur then double\n"
        "steps:\n"
        "  - op: gaussian_blur\n"
        "    ksize: 3\n"
        "  - op: resize\n"
        "    factor: 2\n"
        "    interpolation: lanczos\n"
    )
    p = Pipeline.from_file(path)
    assert p.name == "soft-x2" and p.scale == 2
    assert dict(p.steps[0].params) == {"ksize": 3, "sigma": 0.0}
    frame = rng.random((10, 12, 3), dtype=np.float32)
    expected = C.resize(C.gaussian_blur(frame, 3), factor=2, interpolation="lanczos")
    np.testing.assert_array_equal(p.apply(frame), expected)


@pytest.mark.parametrize(
    "data,message",
    [
        (
            {"steps": [{"op": "gaussian_blur", "ksize": 4}]},
            r"step 1 \(gaussian_blur\): parameter 'ksize' = 4 is invalid; expected an odd integer in \[1, 99\]",
        ),
        (
            {
                "steps": [
                    {"op": "laplacian_sharpen"},
                    {"op": "resize", "factor": 4, "interpolation": "cubic"},
                ]
            },
            r"step 2 \(resize\): parameter 'interpolation' = 'cubic' is invalid; expected one of 'nearest', 'bilinear'",
        ),
        (
            {"steps": [{"op": "sharpen"}]},
            r"step 1: unknown operator 'sharpen'; known operators: .*laplacian_sharpen",
        ),
        (
            {"steps": [{"op": "clahe", "clip": 2}]},
            r"step 1 \(clahe\): unknown parameter\(s\) 'clip'; clahe takes clip_limit, tile_grid",
        ),
        (
            {"steps": [{"op": "resize"}]},
            r"step 1 \(resize\): give exactly one of 'factor' and 'size'",
        ),
        ({"steps": [{"ksize": 3}]}, r"step 1: expected a mapping with an 'op' name"),
        ({"steps": []}, r"'steps' must be a non-empty list"),
        ({"stages": []}, r"unknown key\(s\) 'stages'"),
        ([1, 2], r"expected a mapping with 'steps'"),
        (
            {"steps": [{"op": "nl_means", "h": "strong"}]},
            r"'h' = 'strong' is invalid; expected a number in \(0, 1\]",
        ),
    ],
)
def test_invalid_recipes_name_step_parameter_and_allowed_values(data, message):
    with pytest.raises(ParameterError, match=message) as info:
        Pipeline.from_dict(data)
    assert isinstance(info.value, ValueError)


def test_recipe_file_errors(tmp_path):
    with pytest.raises(SourceNotFoundError, match="recipe file not found"):
        Pipeline.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "recipe.txt"
    bad.write_text("steps: []")
    with pytest.raises(ParameterError, match=r"must end in \.json, \.yaml, \.yml"):
        Pipeline.from_file(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [\n  - op: x\n")
    with pytest.raises(ParameterError, match="broken.yaml: not valid YAML"):
        Pipeline.from_file(broken)
    broken = tmp_path / "broken.json"
    broken.write_text("{steps: ")
    with pytest.raises(ParameterError, match="not valid JSON"):
        Pipeline.from_file(broken)


def test_scale_and_context():
    p = Pipeline(
        [
            ("resize", {"factor": 2}),
            ("temporal_median", {"radius": 2}),
            ("resize", {"factor": 1.5}),
            ("temporal_mean", {"radius": 1}),
        ]
    )
    assert p.scale == 3.0
    assert p.context == 3  # chained temporal windows add up
    assert p.temporal
    assert Pipeline([("resize", {"size": (10, 10)})]).scale is None


def test_pipeline_is_immutable():
    seed = get_preset("seed")
    with pytest.raises(TypeError):
        seed.steps[1].params["ksize"] = 7
    assert seed.steps[1].params["ksize"] == 5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_apply_stack_equals_frame_loop_and_leaves_input(dtype, make_stack):
    stack = make_stack(dtype, "rgb", frames=5)
    before = stack.copy()
    p = Pipeline(
        [
            ("unsharp_mask", {"amount": 2.0}),
            ("median_filter", {"size": 5}),
            ("resize", {"factor": 2, "interpolation": "bilinear"}),
        ]
    )
    out = p.apply_stack(stack)
    np.testing.assert_array_equal(stack, before)
    np.testing.assert_array_equal(out, np.stack([p.apply(f) for f in stack]))


def test_apply_stack_channel_axis(make_stack):
    stack = make_stack(np.uint8, "rgb", frames=3)
    p = get_preset("seed")
    moved = np.moveaxis(stack, -1, 1).copy()  # (T, C, H, W)
    out = p.apply_stack(moved, channel_axis=1)
    np.testing.assert_array_equal(np.moveaxis(out, 1, -1), p.apply_stack(stack))


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 65535.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(peak**2 / mse)


def test_uint16_microscopy_stack_denoise_and_clahe(rng):
    """Noisy fluorescent blobs: denoise + CLAHE keeps uint16 and the 16-bit range, and gets
    closer to the clean stack than the noisy input does."""
    t, h, w = 4, 96, 96
    yy, xx = np.mgrid[0:h, 0:w]
    clean = np.full((t, h, w), 800.0)
    for frame in clean:
        for _ in range(12):
            cy, cx = rng.uniform(8, h - 8, 2)
            radius = rng.uniform(2.5, 5)
            frame += rng.uniform(8000, 30000) * np.exp(
                -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)
            )
    clean16 = np.rint(clean).astype(np.uint16)
    noisy = np.clip(clean + rng.normal(0, 1500, clean.shape), 0, 65535)
    noisy16 = np.rint(noisy).astype(np.uint16)

    denoise = Pipeline([("nl_means", {"h": 0.05})])
    denoised = denoise.apply_stack(noisy16)
    assert denoised.dtype == np.uint16
    assert _psnr(denoised, clean16) > _psnr(noisy16, clean16) + 3

    full = get_preset("microscopy-clahe")
    before = noisy16.copy()
    out = full.apply_stack(noisy16)
    np.testing.assert_array_equal(noisy16, before)
    assert out.dtype == np.uint16 and out.shape == noisy16.shape
    assert out.max() > 20000 and len(np.unique(out)) > 1000  # a 16-bit result, not 8-bit
    contrast_only = Pipeline([full.steps[1]])
    target = contrast_only.apply_stack(clean16)
    assert _psnr(out, target) > _psnr(contrast_only.apply_stack(noisy16), target) + 3
    # the blobs stay where they were
    assert (
        np.corrcoef(ndi.gaussian_filter(out.astype(float), (0, 2, 2)).ravel(), clean.ravel())[0, 1]
        > 0.8
    )


def test_single_frame_sees_temporal_steps_as_identity(make_frame):
    frame = make_frame(np.uint8, "rgb")
    p = get_preset("temporal-denoise")
    assert p.context == 1 and p.temporal
    np.testing.assert_array_equal(p.apply(frame), C.unsharp_mask(frame, radius=1.0, amount=0.5))


def test_text_formats():
    seed = get_preset("seed")
    assert json.loads(seed.to_text("json")) == yaml.safe_load(seed.to_text("yaml"))
    with pytest.raises(ParameterError, match="format 'xml' is unknown"):
        seed.to_text("xml")
    with pytest.raises(ParameterError, match="parameters must be a mapping"):
        Pipeline([("gaussian_blur", 5)])
