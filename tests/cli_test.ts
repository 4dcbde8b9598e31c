import assert from "node:assert/strict";
import { readNpyFile, writeNpyFile } from "../core/npy.ts";
import type { Tensor } from "../core/tensor.ts";
import { runOrt } from "./util/ort.ts";
import { runCli as kiln, runCliWith } from "./util/cli.ts";
import { relativeL2 } from "./conformance/compare.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY = `${ROOT}examples/tinynet/tinynet.onnx`;

function _input(): Tensor {
  const data = new Float32Array(2 * 3 * 16 * 16);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37);
  return { dtype: "float32", dims: [2, 3, 16, 16], data };
}

Deno.test("kiln compile/run/inspect: tinynet matches onnxruntime", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const prog = `${dir}/tiny.kiln`;
    await t.step("compile", async () => {
      const r = await kiln("compile", TINY, "--dims", "x=2x3x16x16", "-o", prog);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await Deno.stat(prog)).size > 0);
    });
    await t.step("inspect shows inputs and outputs", async () => {
      const r = await kiln("inspect", prog);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /x: float32\[2,3,16,16\]/);
      assert.match(r.stdout, /probs: float32\[2,10\]/);
      assert.match(r.stdout, /^instructions: \d+ in 1 module\(s\), \d+ in the prepare step$/m);
      assert.match(r.stdout, /^ops: .*\bConv \d+/m);
    });
    await t.step("run writes one .npy per output, equal to onnxruntime's", async () => {
      const x = _input();
      await writeNpyFile(`${dir}/x.npy`, x);
      const r = await kiln("run", prog, "--input", `x=${dir}/x.npy`, "--output", `${dir}/out`);
      assert.equal(r.code, 0, r.stderr);
      const got = await readNpyFile(`${dir}/out/probs.npy`);
      assert.deepEqual(got.dims, [2, 10]);
      const want = (await runOrt(TINY, { x }))["probs"];
      const err = relativeL2(got, want);
      assert.ok(err <= 1e-4, `relative L2 ${err}`);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln CLI: bad input gives one clear line and a non-zero exit", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, string[], RegExp][] = [
      ["missing model", ["compile", `${dir}/nope.onnx`, "-o", `${dir}/a.kiln`], /nope\.onnx/],
      ["unresolved symbolic dim", ["compile", TINY, "-o", `${dir}/a.kiln`], /'x'.*batch|batch.*'x'/],
      ["unknown command", ["frobnicate"], /Unknown command 'frobnicate'/],
      ["bad --dims", ["compile", TINY, "--dims", "x=2xQ", "-o", `${dir}/a.kiln`], /Bad --dims/],
      [
        "unknown pass",
        ["compile", TINY, "--dims", "x=1x3x16x16", "--disable-pass", "nope", "-o", `${dir}/a.kiln`],
        /Unknown pass 'nope' in disablePasses \(the ref pipeline: /,
      ],
    ];
    // every field of --dims is checked: empty, signed, fractional, exponent, padded and too-large
    // fields name the spec and the dim, and never become 0 or a silently parsed number
    const dimsCases: [string, RegExp][] = [
      ["x=1xx3", /Bad --dims 'x=1xx3': dim 1 of 'x' is empty/],
      ["x=", /Bad --dims 'x=': no dims after '='/],
      ["x=1x", /Bad --dims 'x=1x': dim 1 of 'x' is empty/],
      ["x=x1", /Bad --dims 'x=x1': dim 0 of 'x' is empty/],
      ["x=1,,3", /Bad --dims 'x=1,,3': dim 1 of 'x' is empty/],
      ["x=-1", /Bad --dims 'x=-1': dim 0 of 'x' is '-1'; dims must be non-negative integers/],
      ["x=1.5", /Bad --dims 'x=1\.5': dim 0 of 'x' is '1\.5'/],
      ["x=1e3", /Bad --dims 'x=1e3': dim 0 of 'x' is '1e3'/],
      ["x= 3", /Bad --dims 'x= 3': dim 0 of 'x' is ' 3'/],
      ["x=+2x3x16x16", /Bad --dims 'x=\+2x3x16x16': dim 0 of 'x' is '\+2'/],
      [
        "x=2147483648x3x16x16",
        /Bad --dims 'x=2147483648x3x16x16': dim 0 of 'x' is 2147483648, past 2147483647/,
      ],
      ["x=1x99999999999999999999", /dim 1 of 'x' is 99999999999999999999, past 2147483647/],
      ["=1x3", /Bad --dims '=1x3': expected NAME=1x3x224x224/],
    ];
    for (const [spec, re] of dimsCases) {
      cases.push([`--dims ${spec}`, ["compile", TINY, "--dims", spec, "-o", `${dir}/a.kiln`], re]);
    }
    cases.push([
      "--dims twice for one input",
      ["compile", TINY, "--dims", "x=1x3x16x16", "--dims", "x=2x3x16x16", "-o", `${dir}/a.kiln`],
      /Input 'x' is given twice \(--dims x=1x3x16x16 and --dims x=2x3x16x16\)/,
    ]);
    await Deno.writeFile(
      `${dir}/garbage.onnx`,
      new TextEncoder().encode("this is not protobuf at all \x01\x02"),
    );
    cases.push(["garbage model", ["compile", `${dir}/garbage.onnx`, "-o", `${dir}/a.kiln`], /garbage\.onnx/]);
    await Deno.writeFile(`${dir}/garbage.kiln`, new Uint8Array(8192).fill(7));
    cases.push([
      "garbage program",
      ["run", `${dir}/garbage.kiln`, "--output", `${dir}/o`],
      /not a kiln program file/,
    ]);
    // A truncated program and a wrong input shape need a real program first.
    const ok = await kiln("compile", TINY, "--dims", "x=1x3x16x16", "-o", `${dir}/t.kiln`);
    assert.equal(ok.code, 0, ok.stderr);
    const full = await Deno.readFile(`${dir}/t.kiln`);
    await Deno.writeFile(`${dir}/trunc.kiln`, full.subarray(0, Math.floor(full.length / 2)));
    cases.push(["truncated program", ["inspect", `${dir}/trunc.kiln`], /truncated/]);
    await writeNpyFile(`${dir}/wrong.npy`, {
      dtype: "float32",
      dims: [1, 3, 8, 8],
      data: new Float32Array(192),
    });
    cases.push([
      "wrong input shape",
      ["run", `${dir}/t.kiln`, "--input", `x=${dir}/wrong.npy`, "--output", `${dir}/o`],
      /'x'.*\[1,3,8,8\]|\[1,3,8,8\].*'x'/,
    ]);
    cases.push(["unknown input", [
      "run",
      `${dir}/t.kiln`,
      "--input",
      `y=${dir}/wrong.npy`,
      "--output",
      `${dir}/o`,
    ], /'y'/]);
    for (const [name, args, pattern] of cases) {
      await t.step(name, async () => {
        const r = await kiln(...args);
        assert.notEqual(r.code, 0, `${name}: exit 0`);
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 1, `${name}: expected one line, got:\n${r.stderr}`);
        assert.match(lines[0], /^kiln: /);
        assert.match(lines[0], pattern);
        assert.doesNotMatch(r.stderr, /^\s+at /m);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln perf: latency statistics, generated or given inputs, a per-op profile (ref and gpu)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_cli_perf_" });
  try {
    await t.step("an .onnx model on ref, inputs generated, --json with every sample", async () => {
      const r = await kiln(
        "perf",
        TINY,
        "--dims",
        "x=1x3x16x16",
        "--warmup",
        "1",
        "--iterations",
        "7",
        "--json",
      );
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.target, "ref");
      assert.equal(j.iterations, 7);
      assert.equal(j.samples.length, 7);
      assert.deepEqual(j.inputs.map((v: { name: string; generated: boolean }) => [v.name, v.generated]), [[
        "x",
        true,
      ]]);
      const sorted = [...j.samples].sort((a: number, b: number) => a - b);
      assert.equal(j.min, sorted[0]);
      assert.equal(j.max, sorted[6]);
      assert.equal(j.median, sorted[3]);
      assert.ok(j.min <= j.median && j.median <= j.p90 && j.p90 <= j.p99 && j.p99 <= j.max);
      assert.ok(Math.abs(j.throughput - 1000 / j.mean) < 1e-9);
      assert.match(j.profileWhy ?? "", /^$/);
    });
    await t.step(
      "a weightless program with --weights and a given input; --profile on ref times every node",
      async () => {
        const prog = `${dir}/tiny.kiln`;
        const c = await kiln("compile", TINY, "--defer-weights", "--dims", "x=2x3x16x16", "-o", prog);
        assert.equal(c.code, 0, c.stderr);
        await writeNpyFile(`${dir}/x.npy`, _input());
        const none = await kiln("perf", prog, "--iterations", "2");
        assert.equal(none.code, 1);
        assert.match(none.stderr, /deferred weights: give them with --weights/);
        const r = await kiln(
          "perf",
          prog,
          "--weights",
          `${ROOT}examples/tinynet`,
          "--input",
          `x=${dir}/x.npy`,
          "--iterations",
          "3",
          "--warmup",
          "0",
          "--profile",
        );
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stdout,
          /latency over 3 evals: min [0-9.]+ ms, median [0-9.]+ ms, mean [0-9.]+ ms, p90/,
        );
        assert.match(r.stdout, /throughput: [0-9.]+ evals\/s/);
        // tinynet: Conv, Relu, ... timed node by node on the main thread
        assert.match(r.stdout, /wall time on the main thread of one eval, node by node: [0-9.]+ ms/);
        assert.match(r.stdout, /^ {2}Conv +\d+ x +[0-9.]+ ms/m);
        assert.match(r.stdout, /slowest nodes:/);
        assert.doesNotMatch(r.stderr, /generated inputs/);
      },
    );
    const emu = `${ROOT}build/hip/libkiln_hip_emu.so`;
    let haveEmu = false;
    try {
      haveEmu = Deno.statSync(emu).isFile;
    } catch { /* not built */ }
    await t.step({
      name: "gpu (the CPU emulator): --profile lists the ops and nodes that take longest",
      ignore: !haveEmu,
      fn: async () => {
        const r = await runCliWith(
          ["--allow-read", "--allow-write", `--allow-ffi=${emu}`, "--allow-env"],
          "perf",
          TINY,
          "--dims",
          "x=1x3x16x16",
          "--target",
          "gpu",
          "--gpu-library",
          emu,
          "--iterations",
          "2",
          "--profile",
          "--top",
          "2",
          "--json",
        );
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout);
        assert.equal(j.target, "gpu");
        assert.equal(j.profile.ops.length, 2);
        assert.equal(j.profile.ops[0].op, "Conv");
        assert.ok(j.profile.ops[0].ms >= j.profile.ops[1].ms);
        assert.equal(j.profile.nodes.length, 2);
      },
    });
    await t.step("bad counts are usage errors", async () => {
      for (
        const [flag, v] of [["--iterations", "0"], ["--warmup", "-1"], ["--duration", "0"], ["--top", "x"]]
      ) {
        const r = await kiln("perf", TINY, "--dims", "x=1x3x16x16", flag, v);
        assert.equal(r.code, 2, `${flag} ${v}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`Bad ${flag}|${flag}`));
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kiln CLI: --version, --help for every command, inspect of an .onnx, --json on compile and run", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_cli_polish_" });
  try {
    await t.step("--version", async () => {
      const r = await kiln("--version");
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^kiln \d+\.\d+\.\d+ \(Deno /);
    });
    await t.step("COMMAND --help prints that command's usage and exits 0", async () => {
      for (const cmd of ["compile", "run", "bake", "finalize", "inspect", "perf", "devices", "weights"]) {
        const r = await kiln(cmd, "--help");
        assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`Usage:\\n  kiln ${cmd} `), cmd);
        assert.match(r.stdout, /Options:/, cmd);
      }
    });
    await t.step(
      "inspect MODEL.onnx: opsets, inputs, ops, initializers by file, without compiling",
      async () => {
        const r = await kiln("inspect", TINY);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /inputs:\n {2}x: float32\[/);
        assert.match(r.stdout, /ops: .*Conv 2/);
        assert.match(r.stdout, /initializers: \d+: \d+ inline .*, 8 in external data/);
        assert.match(r.stdout, / {2}tinynet\.onnx\.data: 8 tensor\(s\)/);
        const j = JSON.parse((await kiln("inspect", TINY, "--json")).stdout);
        assert.equal(j.ops.Conv, 2);
        assert.equal(j.initializers.external, 8);
        assert.equal(j.initializers.files[0].location, "tinynet.onnx.data");
        assert.ok(j.opsets[""] >= 1);
      },
    );
    await t.step("compile --json and run --json describe what they did", async () => {
      const prog = `${dir}/t.kiln`;
      const c = await kiln("compile", TINY, "--dims", "x=2x3x16x16", "-o", prog, "--json");
      assert.equal(c.code, 0, c.stderr);
      const cj = JSON.parse(c.stdout);
      assert.equal(cj.target, "ref");
      assert.equal(cj.output, prog);
      assert.deepEqual(cj.hostNodes, []);
      await writeNpyFile(`${dir}/x.npy`, _input());
      const r = await kiln("run", prog, "--input", `x=${dir}/x.npy`, "--output", `${dir}/out`, "--json");
      assert.equal(r.code, 0, r.stderr);
      const rj = JSON.parse(r.stdout);
      assert.equal(rj.outputs.length, 1);
      assert.equal(rj.outputs[0].name, "probs");
      assert.deepEqual(rj.outputs[0].dims, [2, 10]);
      assert.equal((await readNpyFile(rj.outputs[0].file)).dims.length, 2);
      assert.ok(rj.evalMs > 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task kiln: paths are the caller's, the core is built only when out of date", async () => {
  // as from a shell: Deno sets INIT_CWD to the caller's folder only where it is not set already, and
  // this test may itself run under `npm test` / `deno task test`, which set it to the repository
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "kiln", "inspect", "tinynet/tinynet.onnx", "--json"],
    cwd: `${ROOT}examples`,
    clearEnv: true,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const stderr = dec.decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.equal(JSON.parse(dec.decode(out.stdout)).source, "tinynet/tinynet.onnx");
  assert.match(stderr, /build:wasm: up to date/);
});
