#!/usr/bin/env bash
# The one script to run on a lent GPU machine (issue 11): CUDA tests, the network benchmark and
# the pipeline benchmark's GPU rows, within a total wall-time budget (default 8 minutes).
#
# Prepare once, on the developer machine, in the repository the device tool sends:
#     bash scripts/gpu_stage.sh          # -> .gpu/payload.tar.xz (PyAV + golden + sample clip)
# then, with the device tool:
#     run(command="bash scripts/gpu_check.sh", carry=[".gpu"], timeout_s=600)
#
# Every step runs under `timeout` (its cap, or what is left of the budget), goes on after a
# failure, and writes its log under $OUT; the benchmarks rewrite their JSON after every row, so
# a step stopped by its limit keeps what it measured.  A summary (environment, NVENC/NVDEC
# probes, each step's exit code and time, the benchmarks' tables) is printed last and saved as
# $OUT/summary.txt.  Files under $OUT (7, each well under 16 MiB): summary.txt, tests.log,
# network.log, network.json, pipeline.log, pipeline.json, pipeline_cli.log.
#
# Options:
#   --no-gpu      CPU smoke of this script (here, without a GPU): the same steps, with the
#                 quick network grid and the pipeline's CPU rows on a short clip
#   --skip-tests / --skip-network / --skip-pipeline
# Environment: OUT (default /tmp/gpu_check), PYTHON (default python3), GPU_CHECK_BUDGET_S
# (480), GPU_CHECK_CLIP_SECONDS (20), GPU_CHECK_TESTS_S (100), GPU_CHECK_NETWORK_S (150),
# GPU_CHECK_PIPELINE_S (400), NETWORK_ARGS / PIPELINE_ARGS (appended to the
# benchmarks' arguments), GPU_PAYLOAD (default .gpu/payload.tar.xz).
set -u -o pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-480}
CLIP_SECONDS=${GPU_CHECK_CLIP_SECONDS:-20}
PAYLOAD=${GPU_PAYLOAD:-$REPO/.gpu/payload.tar.xz}
NO_GPU=0
RUN_TESTS=1
RUN_NETWORK=1
RUN_PIPELINE=1
for arg in "$@"; do
    case $arg in
        --no-gpu) NO_GPU=1 ;;
        --skip-tests) RUN_TESTS=0 ;;
        --skip-network) RUN_NETWORK=0 ;;
        --skip-pipeline) RUN_PIPELINE=0 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
START=$(date +%s)
export PYTHONUNBUFFERED=1

say() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME CAP_S COMMAND...: run under timeout (the cap or what is left, minus a reserve for
# the steps after it and the summary), log to $OUT/NAME.log, record rc and seconds
RESERVE=${GPU_CHECK_RESERVE_S:-15}
declare -a RESULTS=()
step() {
    local name=$1 cap=$2
    shift 2
    local avail=$(( $(left) - RESERVE ))
    local limit=$(( cap < avail ? cap : avail ))
    if [ "$limit" -lt 20 ]; then
        RESULTS+=("$name: skipped (budget: ${avail}s left)")
        return
    fi
    STEP_LIMIT=$limit
    local t0=$(date +%s)
    local shown="$*"
    echo "== $name (limit ${limit}s): ${shown:0:160}"
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    local what="rc=$rc"
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && what="rc=$rc (stopped at its ${limit}s limit)"
    RESULTS+=("$name: $what, ${dt}s")
    echo "   $name: $what, ${dt}s"
}

# --- setup: the carried payload (PyAV, golden data, sample clip) ---------------------------------
SITE=/tmp/vsr-gpu
if [ -f "$PAYLOAD" ]; then
    rm -rf "$SITE" && mkdir -p "$SITE"
    "$PY" - "$PAYLOAD" "$SITE" <<'EOF' || say "payload: could not unpack $1"
import sys, tarfile
with tarfile.open(sys.argv[1], "r:xz") as tar:
    try:
        tar.extractall(sys.argv[2], filter="data")
    except TypeError:  # Python without extraction filters
        tar.extractall(sys.argv[2])
EOF
    export PYTHONPATH="$REPO/src:$SITE/site${PYTHONPATH:+:$PYTHONPATH}"
    if [ -d "$SITE/shared" ]; then export NAPARI_VSR_SHARED="$SITE/shared"; fi
    payload_note="unpacked $(du -sh "$SITE" | cut -f1) from $PAYLOAD in $(( $(date +%s) - START ))s"
else
    export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
    payload_note="no payload at $PAYLOAD (using this Python's own packages)"
fi

# --- environment and the NVENC / NVDEC probes ----------------------------------------------------
{
    echo "== gpu_check.sh $(date -u +%FT%TZ), budget ${BUDGET}s, no-gpu=$NO_GPU"
    echo "repo: $REPO ($(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
    echo "payload: $payload_note"
    echo "PYTHONPATH=$PYTHONPATH NAPARI_VSR_SHARED=${NAPARI_VSR_SHARED:-}"
    uname -srm; nproc; free -g 2>/dev/null | head -2
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit \
            --format=csv 2>&1
    else
        echo "nvidia-smi: not found"
    fi
    echo "NVENC/NVDEC driver libraries:"
    (ldconfig -p 2>/dev/null; ls /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu 2>/dev/null) \
        | grep -oE "lib(nvidia-encode|nvcuvid)\.so[.0-9]*" | sort -u | tr '\n' ' '
    echo
    timeout 120 "$PY" - <<'EOF' 2>&1
import platform, time
print("python", platform.python_version())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as exc:
    print("torch: not importable:", exc)
try:
    import numpy as np
    import av
    print("av", av.__version__, "libavcodec", av.library_versions["libavcodec"])
    print("nvenc encoders:", sorted(c for c in av.codecs_available if "nvenc" in c))
    print("hw devices:", av.codec.hwaccel.hwdevices_available())
except Exception as exc:
    print("av: not importable:", exc)
    raise SystemExit(0)
import os, tempfile
path = os.path.join(tempfile.mkdtemp(), "probe.mp4")
try:  # NVENC: encode 32 frames of 1280x720
    t0 = time.perf_counter()
    with av.open(path, "w") as out:
        s = out.add_stream("h264_nvenc", rate=25)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(32):
            img = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    print(f"NVENC probe: ok, 32 frames 1280x720 in {time.perf_counter() - t0:.2f}s")
except Exception as exc:
    print("NVENC probe: FAILED:", type(exc).__name__, exc)
    with av.open(path, "w") as out:  # a clip for the NVDEC probe anyway
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        for i in range(32):
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((720, 1280, 3), np.uint8), format="rgb24")))
        out.mux(s.encode(None))
try:  # NVDEC through PyAV's hwaccel (no software fallback)
    from av.codec.hwaccel import HWAccel
    t0 = time.perf_counter()
    with av.open(path, hwaccel=HWAccel(device_type="cuda", allow_software_fallback=False)) as c:
        n = sum(1 for _ in c.decode(video=0))
    print(f"NVDEC probe: ok, {n} frames decoded in {time.perf_counter() - t0:.2f}s")
except Exception as exc:
    print("NVDEC probe: FAILED:", type(exc).__name__, exc)
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt" >> "$SUMMARY"
rm -f "$OUT/env.txt"
tail -n 12 "$SUMMARY"

# --- 1. CUDA tests (they skip without CUDA) ------------------------------------------------------
if [ "$RUN_TESTS" = 1 ]; then
    mapfile -t TEST_FILES < <(grep -rlE "mark\.gpu|requires_cuda|cuda\.is_available|nvenc|nvdec|hwaccel" \
        tests --include='test_*.py' | grep -v '^tests/qt/' | sort)
    echo "test files: ${TEST_FILES[*]:-none}"
    if [ "${#TEST_FILES[@]}" -eq 0 ]; then RESULTS+=("tests: no test file mentions CUDA"); fi
    # -m gpu, then tests named after CUDA/NVENC/NVDEC that lack the mark; exit 5 = none selected
    [ "${#TEST_FILES[@]}" -gt 0 ] && step tests "${GPU_CHECK_TESTS_S:-100}" bash -c '
        "$0" -m pytest -q -p no:cacheprovider -W ignore -rs -m gpu "$@"; a=$?
        echo "== tests named cuda/nvenc/nvdec/hwaccel without the gpu mark"
        "$0" -m pytest -q -p no:cacheprovider -W ignore -rs -m "not gpu" -k "cuda or nvenc or nvdec or hwaccel" "$@"; b=$?
        [ $a -eq 5 ] && a=0; [ $b -eq 5 ] && b=0
        exit $(( a > b ? a : b ))' "$PY" "${TEST_FILES[@]}"
fi

# --- 2. the network alone ------------------------------------------------------------------------
if [ "$RUN_NETWORK" = 1 ]; then
    if [ "$NO_GPU" = 1 ]; then
        net_args=(--quick --batches 1 --frames 2)
        cap=300
    else
        cap=${GPU_CHECK_NETWORK_S:-150}
        net_args=(--count-flops)
    fi
    avail=$(( $(left) - RESERVE ))
    lim=$(( cap < avail ? cap : avail ))
    # shellcheck disable=SC2086
    step network "$cap" "$PY" benchmarks/bench_network.py "${net_args[@]}" \
        --budget-s $(( lim > 40 ? lim - 25 : lim )) --out "$OUT/network.json" ${NETWORK_ARGS:-}
fi

# --- 3. the pipeline end to end ------------------------------------------------------------------
if [ "$RUN_PIPELINE" = 1 ]; then
    if [ "$NO_GPU" = 1 ]; then
        pipe_args=(--rows cpu --seconds 0.8 --no-fixed-cost)
        cap=400
    else
        pipe_args=(--rows gpu --seconds "$CLIP_SECONDS")
        cap=${GPU_CHECK_PIPELINE_S:-400}
    fi
    avail=$(( $(left) - RESERVE ))
    lim=$(( cap < avail ? cap : avail ))
    # shellcheck disable=SC2086
    step pipeline "$cap" "$PY" benchmarks/bench_pipeline.py "${pipe_args[@]}" \
        --budget-s $(( lim > 60 ? lim - 45 : lim )) --row-timeout $(( lim > 60 ? lim - 30 : lim )) \
        --out "$OUT/pipeline.json" --log "$OUT/pipeline_cli.log" ${PIPELINE_ARGS:-}
fi

# --- summary -------------------------------------------------------------------------------------
{
    echo
    echo "== steps ($(( $(date +%s) - START ))s of ${BUDGET}s)"
    printf '%s\n' "${RESULTS[@]}"
    if [ -f "$OUT/tests.log" ]; then
        echo; echo "== tests (last lines)"; grep -E "^(FAILED|ERROR|SKIPPED)|^== tests|[0-9]+ (passed|failed|skipped|deselected|errors?)\b" \
            "$OUT/tests.log" | tail -n 30
    fi
    if [ -f "$OUT/network.log" ]; then
        echo; echo "== network"; sed -n '/^RealBasicVSR x4 network only/,$p' "$OUT/network.log" | head -n 80
        grep -E "^counted:" "$OUT/network.log"
    fi
    if [ -f "$OUT/pipeline.log" ]; then
        echo; echo "== pipeline"; sed -n '/^(a) CPU\|^(b) GPU/,$p' "$OUT/pipeline.log" | head -n 60
        grep -qE "^\(a\) CPU|^\(b\) GPU" "$OUT/pipeline.log" || tail -n 25 "$OUT/pipeline.log"
    fi
} >> "$SUMMARY"
sed -n '/^== steps/,$p' "$SUMMARY"
echo "files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit 0
