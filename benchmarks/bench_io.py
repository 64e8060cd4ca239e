"""Benchmark the video reader: open time, sequential fps, random-access latency, accuracy, memory.

Clips (generated with PyAV, each frame stamped with its index as a barcode so every read is
checked for frame accuracy; content: the demo_000 sample frames scaled up, so the bit rate is
that of real footage rather than of a synthetic pattern):

* ``1080p gop120``  1920x1080 H.264, GOP 120, 3 B-frames, CRF 23
* ``360p gop250``   640x360 H.264, GOP 250, 3 B-frames, CRF 23
* ``1080p synthetic``  the same encoding (GOP 120, 3 B-frames, CRF 23) of the tests' synthetic
                    moving texture instead of footage: a second kind of content
* ``1080p long``    the 1080p clip repeated by remuxing to ~5000 frames (open time vs length;
                    random reads only)
* ``sample clip``   the shipped 10-frame FFV1 clip (intra only; accuracy checked by pixels
                    against a plain decode converted as the reader converts)

A last table times the YUV->RGB conversion of one 1080p yuv420p BT.709 frame of flat patches
(swscale's default and accurate paths, napari-vsr's) and gives each one's largest error against
the BT.709 formula.

Rows per clip:

* ``baseline``      PyAV decoding every frame in order with ``to_ndarray("rgb24")``, default
                    decoder settings (what a plain PyAV loop does); ``baseline thr`` the same with
                    frame+slice threads
* ``napari-vsr``    ``open_frames(path)``, then ``v[i]`` for every i (sequential); then, on a
                    freshly opened reader, ``v[i]`` for seeded random i (random access; default
                    128 MiB cache, which only helps when an index repeats)
* ``no skip``       the same random reads without skipping non-reference frames (shows what
                    that saves)
* ``no threads``    the same random reads with FFmpeg's frame threads off (decides the thread
                    choice for the random path)
* ``napari-pyav``, ``napari-video``  the readers of those two plugins (``FastVideoReader``,
                    ``VideoReaderNP``) on the same barcoded clips, same reads, accuracy checked;
                    rows only when they are importable.  They are not dependencies of napari-vsr
                    (napari-pyav requires ``napari[qt]``): install them apart, e.g.
                    ``pip install --no-deps --target /tmp/others napari-pyav napari-video
                    pyvideoreader`` and run with ``PYTHONPATH=/tmp/others``
* ``via napari``    (``--napari``) the same clip opened in a napari viewer, moving the frame
                    slider to every frame, then to random frames (cache cleared), with events
                    processed after each move; accuracy checked on the displayed slice; the
                    same for the other plugins when importable (``napari-pyav napari``, ...)

Random reads are interleaved: each random index is read by every reader in turn (each on its
own freshly opened reader), so load from other processes hits all rows alike.  Sequential passes
alternate between the readers too, best of ``--seq-passes``.

    python benchmarks/bench_io.py            # full run (a few minutes, encodes ~30 s of video)
    python benchmarks/bench_io.py --quick    # smoke run: short clips, few random reads
    xvfb-run -a python benchmarks/bench_io.py --napari   # plus reads through a napari viewer
    PYTHONPATH=/tmp/others python benchmarks/bench_io.py  # plus napari-pyav / napari-video

Prints a table and writes ``benchmarks/results/io.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from napari_vsr._sample_data import sample_clip_path
from napari_vsr.io import color, open_frames
from napari_vsr.io.video_reader import VideoFrames

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("NAPARI_VSR_SHARED", REPO.parent / "shared"))
SAMPLES = SHARED / "samples" / "demo_000"
#: the 1080p clip is repeated (by remuxing) to about this many frames for the open-time row
LONG_FRAMES = 5000

_spec = importlib.util.spec_from_file_location("vsr_media", REPO / "tests" / "io" / "media.py")
media = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(media)


def _rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20


def _content(height: int, width: int):
    """source(i) -> frame: sample frames scaled to the size with a slow pan (synthetic fallback)."""
    files = sorted(SAMPLES.glob("*.png")) if SAMPLES.is_dir() else []
    if not files:
        return None
    cache: dict[int, np.ndarray] = {}

    def source(i: int) -> np.ndarray:
        k = i % len(files)
        if k not in cache:
            img = cv2.cvtColor(cv2.imread(str(files[k])), cv2.COLOR_BGR2RGB)
            cache[k] = cv2.resize(img, (width + 64, height + 64), interpolation=cv2.INTER_LINEAR)
        off = (i // len(files)) % 64
        return cache[k][off : off + height, off : off + width]

    return source


def make_clips(folder: Path, quick: bool) -> list[tuple[str, Path, bool]]:
    # (name, (height, width), frames, GOP, real footage?)  The "synthetic" clip carries the
    # tests' moving texture instead of footage: a second kind of content at the same settings.
    specs = [
        ("1080p gop120", (1080, 1920), 130 if quick else 360, 120, True),
        ("360p gop250", (360, 640), 260 if quick else 750, 250, True),
        ("1080p synthetic", (1080, 1920), 130 if quick else 360, 120, False),
    ]
    clips = []
    for name, size, n, gop, real in specs:
        path = folder / f"{name.replace(' ', '_')}_{n}.mp4"
        if not path.exists():
            t = time.perf_counter()
            content = _content(*size) if real else None
            media.make_video(
                path, n_frames=n, size=size, gop=gop, bframes=3, crf=23, source=content
            )
            print(
                f"  encoded {name}: {n} frames in {time.perf_counter() - t:.1f} s", file=sys.stderr
            )
        clips.append((name, path, True))
    repeats = -(-LONG_FRAMES // specs[0][2])
    long_path = folder / f"1080p_long_{specs[0][2]}x{repeats}.mp4"
    if not long_path.exists():
        repeat_clip(clips[0][1], long_path, repeats)
    clips.append(("1080p long", long_path, True))
    clips.append(("sample clip", sample_clip_path(), False))
    return clips


def repeat_clip(src_path: Path, out_path: Path, repeats: int) -> None:
    """Concatenate a clip with itself by remuxing packets (no encoding): a long file, fast."""
    with av.open(str(src_path)) as src, av.open(str(out_path), "w") as out:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.dts is not None]
        step = stream.frames * int(round(1 / (stream.average_rate * stream.time_base)))
        o = out.add_stream_from_template(stream)
        for r in range(repeats):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts = p.pts + r * step, p.dts + r * step
                q.is_keyframe = p.is_keyframe
                q.time_base, q.stream = p.time_base, o
                out.mux(q)


#: reader row name -> the plugin name napari knows it by
NAPARI_PLUGIN_IDS = {"napari-video": "napari_video"}


def other_readers() -> dict[str, object]:
    """name -> reader class of the napari-pyav / napari-video plugins, when importable."""
    found: dict[str, object] = {}
    try:
        from napari_pyav._reader import FastVideoReader

        found["napari-pyav"] = FastVideoReader
    except Exception as exc:  # not installed, or an import-time dependency missing
        print(f"  napari-pyav rows skipped: {exc}", file=sys.stderr)
    try:
        from napari_video.napari_video import VideoReaderNP

        found["napari-video"] = VideoReaderNP
    except Exception as exc:
        print(f"  napari-video rows skipped: {exc}", file=sys.stderr)
    return found


def _quiet_open(factory, path: Path):
    import warnings

    with warnings.catch_warnings():  # napari-pyav warns about B-frames on every open
        warnings.simplefilter("ignore")
        return factory(str(path))


def _close(reader) -> None:
    close = getattr(reader, "close", None)
    if close is not None:
        close()


def baseline_sequential(path: Path, *, threads: bool, keep_frames: bool = False):
    """(frames/s, decoded frames if keep_frames else None, frame count)."""
    keep: list[np.ndarray] | None = [] if keep_frames else None
    t = time.perf_counter()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if threads:
            s.thread_type = "AUTO"
        convert = None
        for frame in c.decode(s):
            if keep is not None:  # the pixel reference: napari-vsr's colour conversion
                if convert is None:
                    convert = _reader_conversion(frame)
                keep.append(convert(frame))
            else:
                frame.to_ndarray(format="rgb24")
            n += 1
    return n / (time.perf_counter() - t), keep, n


def _reader_conversion(frame: av.VideoFrame):
    """frame -> RGB as the reader converts it (its matrix, range and rounding)."""
    info = color.describe_stream(
        frame.colorspace,
        frame.color_range,
        frame.color_primaries,
        frame.color_trc,
        width=frame.width,
        height=frame.height,
        pix_fmt=frame.format.name,
    )
    if color.is_yuv_format(frame.format.name):
        return color.YuvToRgb(frame.format.name, info)
    return lambda f: f.to_ndarray(format="rgb24")


def measure_color(height: int = 1080, width: int = 1920, repeats: int = 30) -> list[dict]:
    """YUV->RGB conversion of one 1080p yuv420p BT.709 frame: ms per frame and max error.

    The frame holds flat patches (primaries, secondaries, random colours) whose Y'CbCr values
    come from the BT.709 formula; the error is against the formula's RGB on patch interiors.
    """
    rng = np.random.default_rng(0)
    p = 60
    rgb = np.zeros((height, width, 3))
    fixed = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1)]
    colours = np.vstack([fixed, rng.random(((height // p) * (width // p), 3))])
    mask = np.zeros((height, width), bool)
    for k in range((height // p) * (width // p)):
        r, c = divmod(k, width // p)
        rgb[r * p : (r + 1) * p, c * p : (c + 1) * p] = colours[k]
        mask[r * p + 4 : (r + 1) * p - 4, c * p + 4 : (c + 1) * p - 4] = True
    info = color.ColorInfo("bt709", "limited", "bt709", "bt709")
    ycc = np.clip(np.rint(color.rgb_to_ycbcr(rgb, "bt709")), 0, 255)
    frame = av.VideoFrame(width, height, "yuv420p")
    for k, plane in enumerate(frame.planes):
        step = height // plane.height
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, -1)
        rows[:, : plane.width] = ycc[::step, ::step, k]
    frame.colorspace, frame.color_range = 1, 1
    up = np.repeat(np.repeat(ycc[::2, ::2, 1:], 2, 0), 2, 1)
    full = np.concatenate([ycc[..., :1], up], axis=-1)
    reference = np.clip(color.ycbcr_to_rgb(full, "bt709"), 0, 1) * 255
    sws = {"format": "rgb24", "src_colorspace": color.MATRIX_TO_SWS["bt709"], "threads": 1}
    ways = {
        "swscale default": lambda f: f.to_ndarray(**sws),
        "swscale accurate": lambda f: f.to_ndarray(interpolation=color.SWS_ACCURATE, **sws),
        "napari-vsr": color.YuvToRgb("yuv420p", info),
    }
    times: dict[str, list[float]] = {k: [] for k in ways}
    errors = {k: float(np.abs(fn(frame) - reference)[mask].max()) for k, fn in ways.items()}
    for _ in range(repeats):  # interleaved, so load from other processes hits all alike
        for k, fn in ways.items():
            t = time.perf_counter()
            fn(frame)
            times[k].append(time.perf_counter() - t)
    return [
        {
            "conversion": k,
            "ms_median": 1e3 * float(np.median(v)),
            "ms_min": 1e3 * float(np.min(v)),
            "max_error_levels": errors[k],
        }
        for k, v in times.items()
    ]


def measure(
    name: str,
    path: Path,
    barcoded: bool,
    n_random: int,
    seed: int,
    no_skip: bool,
    *,
    sequential: bool = True,
    period: int | None = None,
    others: dict[str, object] | None = None,
    seq_passes: int = 2,
):
    """Rows for one clip; ``period``: barcodes repeat every ``period`` frames (long clip)."""
    rows = []
    reference = None
    if not barcoded:  # the plain decode is the pixel reference
        _, reference, _ = baseline_sequential(path, threads=False, keep_frames=True)

    def check(i: int, frame: np.ndarray) -> bool:
        if barcoded:
            return media.read_barcode(frame) == (i % period if period else i)
        return reference is not None and np.array_equal(frame, reference[i])

    others = others or {}
    opens = []
    for _ in range(3):
        t = time.perf_counter()
        v = open_frames(path)
        opens.append(time.perf_counter() - t)
        v.close()
    rss0 = _rss_mb()
    factories: dict[str, object] = {"napari-vsr": lambda p: open_frames(p)}
    if barcoded:  # the other readers convert colours their own way: checked by barcode only
        factories.update(others)
    seq: dict[str, list[float]] = {}
    seq_ok: dict[str, int] = {}
    rss_seq = rss0
    base: dict[str, list[float]] = {"baseline": [], "baseline thr": []}
    n_base = 0
    if sequential:
        for _pass in range(seq_passes):
            for reader_name, threads in (("baseline", False), ("baseline thr", True)):
                fps, _, n_base = baseline_sequential(path, threads=threads)
                base[reader_name].append(fps)
            for reader_name, factory in factories.items():
                v = _quiet_open(factory, path)
                n_seq = v.shape[0]  # napari-pyav has no __len__
                t = time.perf_counter()
                ok = sum(check(i, v[i]) for i in range(n_seq))
                seq.setdefault(reader_name, []).append(n_seq / (time.perf_counter() - t))
                seq_ok[reader_name] = min(seq_ok.get(reader_name, n_seq), ok)
                if reader_name == "napari-vsr" and rss0 is not None:
                    rss_seq = max(rss_seq, _rss_mb())
                _close(v)
    with open_frames(path) as v:
        n = len(v)
        cache_mb = v._cache.max_bytes / 2**20
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=n_random)

    # random access on fresh readers (the cache only helps when an index repeats),
    # interleaved: every index is read by each reader in turn
    readers = {"napari-vsr": open_frames(path)}
    if no_skip:
        readers["no skip"] = open_frames(path)
        readers["no skip"]._skip = False
        readers["no threads"] = VideoFrames(path, threads=False)
    for reader_name, factory in factories.items():
        if reader_name != "napari-vsr":
            readers[reader_name] = _quiet_open(factory, path)
    lat: dict[str, list[float]] = {k: [] for k in readers}
    rand_ok = dict.fromkeys(readers, 0)
    rss_rand = rss0
    for i in idx:
        for reader_name, reader in readers.items():
            t0 = time.perf_counter()
            frame = reader[int(i)]
            lat[reader_name].append(time.perf_counter() - t0)
            rand_ok[reader_name] += check(int(i), frame)
        if rss0 is not None:
            rss_rand = max(rss_rand, _rss_mb())
    for reader in readers.values():
        _close(reader)

    for reader_name, fps in base.items():
        if fps:
            rows.append(
                {"clip": name, "reader": reader_name, "seq_fps": max(fps), "frames": n_base}
            )
    for reader_name in readers:
        ok = rand_ok[reader_name] + seq_ok.get(reader_name, 0)
        total = len(idx) + (n if reader_name in seq else 0)
        row = {
            "clip": name,
            "reader": reader_name,
            "frames": n,
            "seq_fps": max(seq[reader_name]) if reader_name in seq else None,
            "rand_median_ms": 1e3 * float(np.median(lat[reader_name])),
            "rand_p95_ms": 1e3 * float(np.percentile(lat[reader_name], 95)),
            "accuracy": ok / total,
        }
        if reader_name == "napari-vsr":
            row["open_ms"] = 1e3 * float(np.median(opens))
            row["cache_mb"] = cache_mb
            # process growth while the reads ran (the other readers' rows run in the same
            # process, so their memory is included once they are installed)
            row["rss_growth_mb"] = None if rss0 is None else max(rss_seq, rss_rand) - rss0
        rows.append(row)
    return rows


def measure_napari(
    name: str, path: Path, n_random: int, seed: int, plugin: str = "napari-vsr"
) -> dict:
    """Sequential and random reads through a napari viewer (dims slider, as a user does)."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False)
    try:
        [layer] = viewer.open(str(path), plugin=plugin)
        n = layer.data.shape[0]
        app = QApplication.instance()

        def show(i: int) -> bool:
            viewer.dims.set_point(0, i)
            app.processEvents()
            return media.read_barcode(np.asarray(layer._slice.image.view)) == i

        t = time.perf_counter()
        ok = sum(show(i) for i in range(n))
        seq_fps = n / (time.perf_counter() - t)
        if hasattr(layer.data, "_cache"):
            layer.data._cache.clear()
        lat = []
        for i in np.random.default_rng(seed).integers(0, n, size=n_random):
            t0 = time.perf_counter()
            ok += show(int(i))
            lat.append(time.perf_counter() - t0)
        return {
            "clip": name,
            "reader": "via napari",
            "frames": n,
            "seq_fps": seq_fps,
            "rand_median_ms": 1e3 * float(np.median(lat)),
            "rand_p95_ms": 1e3 * float(np.percentile(lat, 95)),
            "accuracy": ok / (n + n_random),
        }
    finally:
        viewer.close()


def _fmt(value, spec: str) -> str:
    width = int(spec.split(".")[0] or 0)
    return f"{'-':>{width}}" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short clips and few random reads")
    ap.add_argument("--random", type=int, default=None, help="random reads per clip")
    ap.add_argument(
        "--media-dir",
        type=Path,
        default=None,
        help="where to keep the generated clips (reused when present)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--seq-passes", type=int, default=2, help="sequential passes per reader (best is kept)"
    )
    ap.add_argument(
        "--napari",
        action="store_true",
        help="also read the generated clips through a napari viewer (needs a display, "
        "e.g. xvfb-run)",
    )
    args = ap.parse_args(argv)
    n_random = args.random or (12 if args.quick else 100)
    tmp = None
    folder = args.media_dir
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_io-")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    clips = make_clips(folder, args.quick)
    period = None
    others = other_readers()
    for name, path, barcoded in clips:
        long = name == "1080p long"
        rows.extend(
            measure(
                name,
                path,
                barcoded,
                n_random,
                args.seed,
                no_skip=not long,
                sequential=not long,
                period=period if long else None,
                others=None if long else others,
                seq_passes=args.seq_passes,
            )
        )
        if name == "1080p gop120":
            with av.open(str(path)) as c:
                period = c.streams.video[0].frames
        if args.napari and name in ("1080p gop120", "360p gop250"):
            for plugin in ("napari-vsr", *others):
                row = measure_napari(
                    name, path, n_random, args.seed, NAPARI_PLUGIN_IDS.get(plugin, plugin)
                )
                if plugin != "napari-vsr":
                    row["reader"] = f"{plugin} napari"
                rows.append(row)
    header = (
        f"{'clip':<14} {'reader':<19} {'frames':>6} {'open ms':>8} {'seq fps':>8} "
        f"{'rand med ms':>11} {'rand p95 ms':>11} {'accuracy':>8} {'RSS +MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['clip']:<14} {r['reader']:<19} {r.get('frames', 0):>6} "
            f"{_fmt(r.get('open_ms'), '8.1f')} {_fmt(r.get('seq_fps'), '8.1f')} "
            f"{_fmt(r.get('rand_median_ms'), '11.1f')} {_fmt(r.get('rand_p95_ms'), '11.1f')} "
            f"{_fmt(None if r.get('accuracy') is None else 100 * r['accuracy'], '7.1f'):>7}% "
            f"{_fmt(r.get('rss_growth_mb'), '8.0f')}"
        )
    color_rows = measure_color()
    print(f"\n{'1080p yuv420p -> RGB':<20} {'median ms':>9} {'min ms':>7} {'max error':>9}")
    for r in color_rows:
        print(
            f"{r['conversion']:<20} {r['ms_median']:>9.2f} {r['ms_min']:>7.2f} "
            f"{r['max_error_levels']:>9.2f}"
        )
    out = HERE / "results" / "io.json"
    out.parent.mkdir(exist_ok=True)
    doc = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pyav": av.__version__,
            "ffmpeg": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
        },
        "quick": args.quick,
        "random_reads": n_random,
        "seed": args.seed,
        "rows": rows,
        "color": color_rows,
    }
    out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
