#!/usr/bin/env python3
"""The PyTorch half of `deno task bench:gpu` (bench/gpu.ts runs it, then times kiln on what it wrote).

For each model (GPT-2, BERT-base, ResNet-50, built from their default configs with seeded random
weights, eval mode, float32 with TF32 off) it writes into --out:

  <model>/input.npy, output.npy          the deterministic input and PyTorch's float32 output
  <model>/output_v2.npy                  PyTorch's output with the second weight set
  <model>/<model>.onnx + its data file   torch.onnx.export(dynamo=True, external_data=True, opset 18)
  <model>/v2/                            the same graph with every float32 external tensor perturbed
                                         (x 1.01 + N(0, 1e-3), seeded) at the same offsets
  <model>/weights.safetensors            the state dict (tied tensors once), and
  <model>/weights_v2.safetensors         the same with the perturbed tensors of v2
  <model>/export.json                    what the export step wrote; a later run with the same torch,
                                         seed and input reuses it (--force-export to redo it)

and times, with torch.cuda.synchronize() around each run, medians of --runs after warm-up:
eager, eager with the input copied from host memory and the output back (what kiln's eval does),
a CUDA graph replay, torch.compile (default and "reduce-overhead"), for ResNet-50 also eager with
PyTorch's default TF32 convolutions (labelled), and two weight-swap baselines: safetensors
load_file(device="cuda") + load_state_dict, and param.copy_(pinned, non_blocking=True) for every
tensor of the state dict. Then the limits, measured in the same run: pinned and pageable
host-to-device copy rates (1 GiB), and the page-cache read rate of the GPT-2 data file into pinned
memory with 1, 8 and 16 threads (8 MiB chunks, two pinned chunks per thread, as kiln's loader).
Everything goes into --out/torch.json (paths relative to --out; times in ms; rates in GB/s, 1e9).

Needs: torch with CUDA, transformers, torchvision, safetensors, numpy, onnx (and what the dynamo
exporter needs, onnxscript). No network: models are built from configs.
"""

import argparse
import concurrent.futures
import datetime
import gc
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
import traceback

import numpy as np

MODELS = ("gpt2", "bert", "resnet50")
SCHEMA = 1
CHUNK = 8 << 20  # page-cache read chunk, as kiln's loader


def log(msg):
    print(f"[gpu_torch] {msg}", flush=True)


def err_text(e):
    lines = traceback.format_exception_only(type(e), e)
    return " ".join(line.strip() for line in lines)[:400]


# ------------------------------------------------------------------------------------------------
# Models: one wrapper each, so the ONNX graph has exactly one input and one output, named.


def _spec(name):
    """Input name, dtype, dims, vocabulary (int inputs), output name, TF32-convolution row."""
    return {
        "gpt2": {"input": "ids", "dtype": "int64", "dims": [1, 128], "vocab": 50257, "output": "logits"},
        "bert": {"input": "ids", "dtype": "int64", "dims": [8, 128], "vocab": 30522,
                 "output": "last_hidden_state"},
        "resnet50": {"input": "x", "dtype": "float32", "dims": [8, 3, 224, 224], "output": "logits",
                     "tf32_row": True},
    }[name]


def build_model(name, torch):
    """The model as a module with one positional input, its random weights drawn by torch's RNG."""
    nn = torch.nn
    if name == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        class GPT2(nn.Module):
            def __init__(self):
                super().__init__()
                self.m = GPT2LMHeadModel(GPT2Config())

            def forward(self, ids):
                return self.m(input_ids=ids, use_cache=False, return_dict=True).logits

        return GPT2()
    if name == "bert":
        from transformers import BertConfig, BertModel

        class Bert(nn.Module):
            def __init__(self):
                super().__init__()
                self.m = BertModel(BertConfig())

            def forward(self, ids):
                return self.m(input_ids=ids, return_dict=True).last_hidden_state

        return Bert()
    if name == "resnet50":
        import torchvision

        class ResNet50(nn.Module):
            def __init__(self):
                super().__init__()
                self.m = torchvision.models.resnet50(weights=None)

            def forward(self, x):
                return self.m(x)

        return ResNet50()
    raise ValueError(f"Unknown model '{name}' (known: {', '.join(MODELS)})")


def make_input(spec):
    """ids[i] = (i * 7919) % vocab, or x[i] = sin(i * 0.001), over the flattened dims."""
    n = int(np.prod(spec["dims"]))
    i = np.arange(n, dtype=np.int64)
    if spec["dtype"] == "int64":
        return ((i * 7919) % spec["vocab"]).astype(np.int64).reshape(spec["dims"])
    return np.sin(i.astype(np.float64) * 0.001).astype(np.float32).reshape(spec["dims"])


# ------------------------------------------------------------------------------------------------
# ONNX external data: the initializers' ranges, the perturbed second weight set.


def external_initializers(onnx_path):
    """Every initializer stored as external data: name, ONNX data type, dims, location, offset, length."""
    import onnx

    model = onnx.load(onnx_path, load_external_data=False)
    out = []
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        e = {x.key: x.value for x in t.external_data}
        dims = [int(d) for d in t.dims]
        n = int(np.prod(dims)) if dims else 1
        length = int(e["length"]) if "length" in e else (n * 4 if t.data_type == onnx.TensorProto.FLOAT else None)
        out.append({
            "name": t.name,
            "float32": t.data_type == onnx.TensorProto.FLOAT,
            "dims": dims,
            "location": e["location"],
            "offset": int(e.get("offset", 0)),
            "length": length,
        })
    return out


def graph_io(onnx_path):
    """The graph's input and output names."""
    import onnx

    g = onnx.load(onnx_path, load_external_data=False).graph
    inits = {t.name for t in g.initializer}
    return [i.name for i in g.input if i.name not in inits], [o.name for o in g.output]


def write_v2(src_dir, onnx_name, dst_dir, seed):
    """Copies the graph and its data files into dst_dir and perturbs every float32 external tensor
    there in place (x * 1.01 + N(0, 1e-3), seeded, tensors in name order). Returns the
    initializers and the perturbed values by name (views of the data files)."""
    inits = external_initializers(os.path.join(src_dir, onnx_name))
    if os.path.isdir(dst_dir):
        shutil.rmtree(dst_dir)
    os.makedirs(dst_dir)
    shutil.copyfile(os.path.join(src_dir, onnx_name), os.path.join(dst_dir, onnx_name))
    files = sorted({i["location"] for i in inits})
    for f in files:
        os.makedirs(os.path.dirname(os.path.join(dst_dir, f)), exist_ok=True)
        shutil.copyfile(os.path.join(src_dir, f), os.path.join(dst_dir, f))
    maps = {f: np.memmap(os.path.join(dst_dir, f), dtype=np.uint8, mode="r+") for f in files}
    rng = np.random.default_rng(seed)
    values = {}
    for t in sorted(inits, key=lambda t: t["name"]):
        if not t["float32"]:
            continue
        raw = maps[t["location"]][t["offset"]:t["offset"] + t["length"]]
        a = raw.view(np.float32)
        a[:] = a * np.float32(1.01) + rng.standard_normal(a.size, dtype=np.float32) * np.float32(1e-3)
        values[t["name"]] = a
    for m in maps.values():
        m.flush()
    return inits, values


def match_state_dict(names, sd_arrays, v1_values):
    """Maps ONNX initializer names to state-dict keys: by name (with or without the wrapper's 'm.'
    prefix) when the values are the same, else by content when exactly one state-dict tensor not yet
    taken has the initializer's v1 bytes. An initializer the exporter computed (a folded batch norm,
    a transposed weight) matches none. Returns {onnx name: key} and the names left unmatched."""
    by_hash = {}
    for k, a in sd_arrays.items():
        by_hash.setdefault(hashlib.sha1(a.tobytes()).hexdigest(), []).append(k)
    taken = set()
    matched, unmatched = {}, []
    for n in names:
        v1 = v1_values[n]
        key = None
        for k in (n, n[2:] if n.startswith("m.") else "m." + n):
            a = sd_arrays.get(k)
            if a is not None and a.size == v1.size and k not in taken and np.array_equal(a.reshape(-1), v1):
                key = k
                break
        if key is None:
            cands = [k for k in by_hash.get(hashlib.sha1(v1.tobytes()).hexdigest(), []) if k not in taken]
            if len(cands) == 1:
                key = cands[0]
        if key is None:
            unmatched.append(n)
        else:
            matched[n] = key
            taken.add(key)
    return matched, unmatched


def read_range(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return np.frombuffer(f.read(length), dtype=np.float32)


def read_whole(path, chunk=64 << 20):
    """Reads a file once (so it is in the page cache); returns its size."""
    n = 0
    buf = bytearray(chunk)
    with open(path, "rb", buffering=0) as f:
        while True:
            k = f.readinto(buf)
            if not k:
                return n
            n += k


# ------------------------------------------------------------------------------------------------
# Timing


def stat(ms):
    return {"median": statistics.median(ms), "min": min(ms), "runs": len(ms)}


def time_runs(torch, fn, runs, warmup):
    """Median wall ms of fn() with torch.cuda.synchronize() before and after each run."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ms.append((time.perf_counter() - t0) * 1e3)
    return stat(ms)


def cuda_graph(torch, model, x):
    """A replay function of model(x) captured in a CUDA graph with a static input."""
    static_x = x.clone()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            model(static_x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        static_y = model(static_x)
    torch.cuda.synchronize()
    return g, static_y


def set_strict_fp32(torch, strict=True):
    """TF32 off (strict) or PyTorch's defaults (matmul off, cuDNN convolutions on)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = not strict


def tf32_state(torch):
    s = {
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
    }
    try:
        s["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    except Exception as e:  # noqa: BLE001 (newer torch may refuse mixing its old and new TF32 APIs)
        s["float32_matmul_precision"] = f"unreadable: {err_text(e)}"
    return s


# ------------------------------------------------------------------------------------------------
# One model


def export_model(torch, name, spec, model, mdir, onnx_name, seed):
    """Exports the graph, writes v2 and the two safetensors files; returns the export record."""
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    x = torch.from_numpy(make_input(spec))
    onnx_path = os.path.join(mdir, onnx_name)
    for f in os.listdir(mdir):
        if f.startswith(onnx_name):  # the graph and its data file from an older export
            os.remove(os.path.join(mdir, f))
    torch.onnx.export(
        model, (x,), onnx_path, dynamo=True, external_data=True, opset_version=18,
        input_names=[spec["input"]], output_names=[spec["output"]],
    )
    export_s = time.perf_counter() - t0
    inputs, outputs = graph_io(onnx_path)
    log(f"{name}: exported in {export_s:.1f} s (inputs {inputs}, outputs {outputs})")

    inits, v2_values = write_v2(mdir, onnx_name, os.path.join(mdir, "v2"), seed + 1000)
    floats = [t for t in inits if t["float32"]]
    v1_values = {t["name"]: read_range(os.path.join(mdir, t["location"]), t["offset"], t["length"])
                 for t in floats}

    # the state dict with tied tensors once (safetensors refuses shared storage)
    sd, aliases, seen = {}, {}, {}
    for k, v in model.state_dict().items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.dtype)
        if key in seen:
            aliases[k] = seen[key]
            continue
        seen[key] = k
        sd[k] = v.detach().clone().contiguous()
    arrays = {k: v.numpy() for k, v in sd.items() if v.dtype == torch.float32}
    matched, unmatched = match_state_dict([t["name"] for t in floats], arrays, v1_values)
    sd2 = dict(sd)
    for n, k in matched.items():
        sd2[k] = torch.from_numpy(np.array(v2_values[n])).reshape(sd[k].shape)
    save_file(sd, os.path.join(mdir, "weights.safetensors"))
    save_file(sd2, os.path.join(mdir, "weights_v2.safetensors"))
    if unmatched:
        log(f"{name}: {len(unmatched)} perturbed ONNX tensors have no state-dict tensor "
            f"(weights_v2.safetensors keeps v1 there; output_v2 will not match kiln's v2): {unmatched[:5]}")
    return {
        "torch": torch.__version__,
        "seed": seed,
        "dims": spec["dims"],
        "onnx": onnx_name,
        "inputs": inputs,
        "outputs": outputs,
        "data_files": sorted({t["location"] for t in inits}),
        "external_tensors": len(inits),
        "float32_tensors_perturbed": len(floats),
        "weight_bytes": sum(t["length"] or 0 for t in inits),
        "v2_state_dict_matched": len(matched),
        "v2_unmatched": unmatched,
        "tied_aliases": aliases,
        "export_s": export_s,
    }


def reusable_export(mdir, onnx_name, torch, spec, seed):
    try:
        with open(os.path.join(mdir, "export.json")) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    if rec.get("torch") != torch.__version__ or rec.get("seed") != seed or rec.get("dims") != spec["dims"]:
        return None
    need = [onnx_name, "weights.safetensors", "weights_v2.safetensors", os.path.join("v2", onnx_name)]
    need += rec.get("data_files", []) + [os.path.join("v2", f) for f in rec.get("data_files", [])]
    return rec if all(os.path.isfile(os.path.join(mdir, f)) for f in need) else None


def load_weights(torch, model, path):
    """load_file(device="cuda") + load_state_dict, synchronized; returns (missing, unexpected)."""
    from safetensors.torch import load_file

    r = model.load_state_dict(load_file(path, device="cuda"), strict=False)
    torch.cuda.synchronize()
    return r.missing_keys, r.unexpected_keys


def run_model(torch, name, args, out):
    spec = _spec(name)
    mdir = os.path.join(out, name)
    os.makedirs(mdir, exist_ok=True)
    onnx_name = f"{name}.onnx"
    entry = {
        "ok": False,
        "input": {"name": spec["input"], "dtype": spec["dtype"], "dims": spec["dims"],
                  "npy": f"{name}/input.npy"},
        "output": {"name": spec["output"], "npy": f"{name}/output.npy", "npy_v2": f"{name}/output_v2.npy"},
        "onnx": f"{name}/{onnx_name}",
        "weights_v2_dir": f"{name}/v2",
        "safetensors": [f"{name}/weights.safetensors", f"{name}/weights_v2.safetensors"],
        "eval_ms": {},
        "swap_ms": {},
        "errors": {},
    }
    x_np = make_input(spec)
    np.save(os.path.join(mdir, "input.npy"), x_np)

    torch.manual_seed(args.seed)
    model = build_model(name, torch).eval()
    rec = None if args.force_export else reusable_export(mdir, onnx_name, torch, spec, args.seed)
    if rec is None:
        log(f"{name}: exporting to {os.path.join(mdir, onnx_name)}")
        with torch.no_grad():
            rec = export_model(torch, name, spec, model, mdir, onnx_name, args.seed)
        with open(os.path.join(mdir, "export.json"), "w") as f:
            json.dump(rec, f, indent=1)
    else:
        log(f"{name}: reusing the export in {mdir} (export.json; --force-export to redo it)")
    entry["export"] = rec
    entry["output"]["name"] = rec["outputs"][0] if rec["outputs"] else spec["output"]

    files = [os.path.join(out, p) for p in entry["safetensors"]]
    model = model.cuda()
    with torch.no_grad():
        # the v1 weights exactly as exported (a reused export was written by an earlier run)
        missing, unexpected = load_weights(torch, model, files[0])
        entry["load_state_dict"] = {"missing": missing, "unexpected": unexpected}
        x = torch.from_numpy(x_np).cuda()
        y = model(x).float().cpu().numpy()
        np.save(os.path.join(mdir, "output.npy"), y)
        entry["output"]["dims"] = list(y.shape)
        load_weights(torch, model, files[1])
        np.save(os.path.join(mdir, "output_v2.npy"), model(x).float().cpu().numpy())
        load_weights(torch, model, files[0])
    entry["ok"] = True
    if args.export_only:
        return entry

    runs, warmup = args.runs, args.warmup
    ev, errors = entry["eval_ms"], entry["errors"]

    def attempt(key, fn):
        """Runs one measurement; its result (if any) goes to eval_ms[key], its error to errors[key]."""
        try:
            r = fn()
            if r is not None:
                ev[key] = r
        except Exception as e:  # noqa: BLE001 (a failed mode is recorded, the run goes on)
            errors[key] = err_text(e)
            log(f"{name}: {key} failed: {errors[key]}")
            try:
                torch.cuda.synchronize()
            except Exception:  # noqa: BLE001 (the next measurement will say)
                pass

    def host_io():
        return model(torch.from_numpy(x_np).cuda()).cpu()

    def tf32():
        set_strict_fp32(torch, strict=False)
        try:
            entry["tf32_row_settings"] = tf32_state(torch)
            return time_runs(torch, lambda: model(x), runs, warmup)
        finally:
            set_strict_fp32(torch)

    def graph():
        g, _ = cuda_graph(torch, model, x)
        return time_runs(torch, g.replay, runs, warmup)

    def graph_tf32():
        set_strict_fp32(torch, strict=False)
        try:
            g, _ = cuda_graph(torch, model, x)
            return time_runs(torch, g.replay, runs, warmup)
        finally:
            set_strict_fp32(torch)

    def compiled(key, mode):
        torch._dynamo.reset()
        cm = torch.compile(model, mode=mode)

        def step():
            if mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            return cm(x)

        t0 = time.perf_counter()
        for _ in range(3):  # reduce-overhead records its CUDA graph after a warm-up call
            step()
        torch.cuda.synchronize()
        entry.setdefault("compile_s", {})[key] = time.perf_counter() - t0
        return time_runs(torch, step, runs, warmup)

    with torch.no_grad():
        log(f"{name}: eager, eager with host input and output")
        attempt("eager", lambda: time_runs(torch, lambda: model(x), runs, warmup))
        attempt("eager_host_io", lambda: time_runs(torch, host_io, runs, warmup))
        if spec.get("tf32_row"):
            attempt("eager_tf32_conv", tf32)
        log(f"{name}: CUDA graph")
        attempt("cuda_graph", graph)
        if spec.get("tf32_row"):
            attempt("cuda_graph_tf32_conv", graph_tf32)
        if not args.no_compile:
            for key, mode in (("compile_default", "default"), ("compile_reduce_overhead", "reduce-overhead")):
                log(f"{name}: torch.compile mode={mode}")
                attempt(key, lambda key=key, mode=mode: compiled(key, mode))
            torch._dynamo.reset()

    log(f"{name}: swaps")
    try:
        swap_baselines(torch, model, files, runs, entry)
    except Exception as e:  # noqa: BLE001
        errors["swap"] = err_text(e)
        log(f"{name}: swap baselines failed: {errors['swap']}")
    return entry  # the model and its buffers go with this frame; main empties the cache


def swap_baselines(torch, model, files, runs, entry):
    """The two weight-swap baselines, alternating v1 and v2 so every swap changes the weights."""
    from safetensors.torch import load_file

    for f in files:
        read_whole(f)  # page cache warm
    sw = entry["swap_ms"]
    with torch.no_grad():
        for i in (1, 0):  # warm-up
            load_weights(torch, model, files[i])
        ms = []
        for r in range(runs):
            t0 = time.perf_counter()
            load_weights(torch, model, files[(r + 1) % 2])
            ms.append((time.perf_counter() - t0) * 1e3)
        sw["safetensors_load_state_dict"] = stat(ms)

        hosts = [{k: t.pin_memory() for k, t in load_file(f).items()} for f in files]
        targets = model.state_dict()
        keys = [k for k in hosts[0] if k in targets]
        entry["swap_bytes"] = sum(hosts[0][k].numel() * hosts[0][k].element_size() for k in keys)

        def copy(i):
            for k in keys:
                targets[k].copy_(hosts[i][k], non_blocking=True)
            torch.cuda.synchronize()

        copy(1)
        copy(0)
        ms = []
        for r in range(runs):
            t0 = time.perf_counter()
            copy((r + 1) % 2)
            ms.append((time.perf_counter() - t0) * 1e3)
        sw["pinned_copy"] = stat(ms)


# ------------------------------------------------------------------------------------------------
# Limits


def h2d_rate(torch, pinned, nbytes=1 << 30, repeats=10):
    """Host-to-device copy rate of one nbytes buffer, GB/s (1e9), median of repeats."""
    h = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
    h.fill_(1)
    d = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    d.copy_(h, non_blocking=pinned)
    torch.cuda.synchronize()
    ms = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        d.copy_(h, non_blocking=pinned)
        torch.cuda.synchronize()
        ms.append(time.perf_counter() - t0)
    del h, d
    return nbytes / 1e9 / statistics.median(ms)


def page_cache_rate(torch, path, threads, repeats=5):
    """Rate of reading a (page-cached) file into pinned memory with `threads` threads, GB/s:
    8 MiB chunks dealt round-robin, each thread reading into its own two pinned chunks in turn
    (os.preadv releases the GIL), median of repeats."""
    size = os.path.getsize(path)
    nchunks = (size + CHUNK - 1) // CHUNK
    ring = [torch.empty(2 * CHUNK, dtype=torch.uint8, pin_memory=True) for _ in range(threads)]
    views = [memoryview(r.numpy()) for r in ring]
    fd = os.open(path, os.O_RDONLY)

    def work(t):
        v = views[t]
        slot = 0
        for c in range(t, nchunks, threads):
            off = c * CHUNK
            want = min(CHUNK, size - off)
            buf = v[slot * CHUNK:slot * CHUNK + want]
            done = 0
            while done < want:
                k = os.preadv(fd, [buf[done:]], off + done)
                if k <= 0:
                    raise OSError(f"Cannot read '{path}': short read at {off + done}")
                done += k
            slot ^= 1
        return 0

    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))  # warm: the file and the threads
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                list(pool.map(work, range(threads)))
                ts.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return size / 1e9 / statistics.median(ts)


def limits(torch, out, models):
    lim = {"h2d_bytes": 1 << 30}
    log("limits: pinned and pageable host-to-device copies (1 GiB)")
    lim["pinned_h2d_gbps"] = h2d_rate(torch, True)
    lim["pageable_h2d_gbps"] = h2d_rate(torch, False)
    # the GPT-2 data file, else the largest exported one
    files = []
    for name, m in models.items():
        rec = m.get("export") or {}
        for f in rec.get("data_files", []):
            p = os.path.join(out, name, f)
            if os.path.isfile(p):
                files.append((name != "gpt2", -os.path.getsize(p), p))
    if files:
        path = sorted(files)[0][2]
        size = read_whole(path)
        log(f"limits: page-cache reads of {path} ({size / 1e6:.0f} MB) into pinned memory")
        lim["page_cache"] = {
            "file": os.path.relpath(path, out),
            "bytes": size,
            "chunk_bytes": CHUNK,
            "gbps": {str(n): page_cache_rate(torch, path, n) for n in (1, 8, 16)},
        }
    return lim


# ------------------------------------------------------------------------------------------------


def versions(torch):
    v = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
         "cudnn": torch.backends.cudnn.version(), "numpy": np.__version__}
    for mod in ("transformers", "torchvision", "safetensors", "onnx", "onnxscript"):
        try:
            v[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 (absent or broken: say so)
            v[mod] = None
    return v


def device_info(torch):
    p = torch.cuda.get_device_properties(0)
    d = {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_bytes": p.total_memory,
         "multiprocessors": p.multi_processor_count}
    try:
        import subprocess

        d["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i", "0"],
            capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except Exception:  # noqa: BLE001 (no nvidia-smi: no driver version)
        d["driver"] = None
    return d


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for the exports, the .npy files and torch.json")
    ap.add_argument("--runs", type=int, default=50, help="timed runs (and swaps) after the warm-up (50)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first (10)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {','.join(MODELS)}")
    ap.add_argument("--seed", type=int, default=0, help="torch.manual_seed before each model is built (0)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--export-only", action="store_true",
                    help="write the exports, inputs and outputs only (no timings, no limits)")
    ap.add_argument("--force-export", action="store_true", help="export again even when export.json matches")
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            ap.error(f"unknown model '{m}' in --models (known: {', '.join(MODELS)})")
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")

    try:
        import torch
    except ImportError as e:
        print(f"[gpu_torch] cannot import torch in {sys.executable}: {e}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print(f"[gpu_torch] no CUDA device for PyTorch {torch.__version__}: nothing timed", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    set_strict_fp32(torch)
    started = datetime.datetime.now(datetime.timezone.utc)
    report = {
        "schema": SCHEMA,
        "date": started.isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "versions": versions(torch),
        "device": device_info(torch),
        "cpu": cpu_name(),
        "settings": {
            "runs": args.runs,
            "warmup": args.warmup,
            "seed": args.seed,
            "compile": not args.no_compile,
            "export_only": args.export_only,
            "tf32": tf32_state(torch),
            "tf32_statement": "float32 with TF32 off: torch.backends.cuda.matmul.allow_tf32 = False and "
                              "torch.backends.cudnn.allow_tf32 = False, except rows named *_tf32_conv "
                              "(cuDNN TF32 convolutions, PyTorch's default)",
            "timing": "wall ms, torch.cuda.synchronize() before and after each run, median of runs after warm-up",
            "units": "ms; rates in GB/s (1e9 bytes/s); paths relative to the folder of this file",
        },
        "models": {},
    }
    json_path = os.path.join(out, "torch.json")
    for name in models:
        log(f"{name}: start")
        try:
            report["models"][name] = run_model(torch, name, args, out)
        except Exception as e:  # noqa: BLE001 (a failed model is recorded, the run goes on)
            traceback.print_exc()
            report["models"][name] = {"ok": False, "error": err_text(e)}
            log(f"{name}: FAILED: {err_text(e)}")
        gc.collect()  # the model, its compiled forms and graphs: free before the next one
        torch.cuda.empty_cache()
        write_json(json_path, report)
    if not args.export_only:
        try:
            report["limits"] = limits(torch, out, report["models"])
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            report["limits"] = {"error": err_text(e)}
    report["seconds"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    write_json(json_path, report)
    log(f"wrote {json_path} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
