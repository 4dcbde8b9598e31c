// The browser example (examples/browser/README.md): kiln's bundle compiles tinynet once with its
// weights deferred, then binds two weight sets fetched over HTTP (safetensors) and swaps between
// them, showing each step's time and the outputs. The result is also left as JSON in #result.
import { compile, load, parseOnnx, WeightSet } from "./kiln.js";

const steps = document.querySelector("#steps tbody");
const outputs = document.querySelector("#outputs tbody");
const status = document.querySelector("#status");

async function timed(label, fn) {
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  steps.insertAdjacentHTML("beforeend", `<tr><td>${label}</td><td class="num">${ms.toFixed(1)}</td></tr>`);
  return { value, ms };
}

function show(label, probs) {
  let top = 0;
  for (let i = 1; i < probs.length; i++) if (probs[i] > probs[top]) top = i;
  const bars = probs.map((p) =>
    `<span class="bar" style="width:${(p * 200).toFixed(0)}px" title="${p.toFixed(4)}"></span>`
  )
    .join(" ");
  outputs.insertAdjacentHTML(
    "beforeend",
    `<tr><td>${label}</td><td class="num">${top}</td><td>${bars}</td></tr>`,
  );
}

const x = {
  dtype: "float32",
  dims: [1, 3, 16, 16],
  data: new Float32Array(768).map((_, i) => Math.sin(i * 0.37)),
};
const result = { ok: false, steps: {}, outputs: {} };
try {
  const model = await timed(
    "fetch + parse tinynet.onnx (weights deferred)",
    () =>
      parseOnnx(new URL("tinynet.onnx", location.href), {
        deferExternalWeights: true,
        inputDims: { x: [1, 3, 16, 16] },
      }),
  );
  const program = await timed("compile once (ref target, WebAssembly)", () => compile(model.value, "ref"));
  const p = program.value;
  for (
    const [label, file] of [["v1", "v1.safetensors"], ["v2", "v2.safetensors"], [
      "v1 again",
      "v1.safetensors",
    ]]
  ) {
    const set = await timed(
      `fetch ${file}`,
      () => WeightSet.fromSafetensors(p, new URL(file, location.href)),
    );
    const bind = await timed(`bind ${label} (swap)`, () => p.bindWeights(set.value));
    const y = await timed(`eval with ${label}`, () => p.eval({ x }));
    const probs = Array.from(y.value.probs.data);
    show(label, probs);
    result.outputs[label] = probs;
    result.steps[label] = {
      bindMs: bind.ms,
      evalMs: y.ms,
      copied: bind.value.copied,
      skipped: bind.value.skipped,
    };
  }
  // a program file with v1 baked in, loaded whole (its SHA-1s checked with WebCrypto)
  const baked = await timed(
    "fetch + load tinynet_v1.kiln (v1 baked)",
    () => load(new URL("tinynet_v1.kiln", location.href)),
  );
  const yb = await timed("eval the baked program", () => baked.value.eval({ x }));
  result.outputs["baked v1"] = Array.from(yb.value.probs.data);
  show("baked v1", result.outputs["baked v1"]);
  result.steps.parseMs = model.ms;
  result.steps.compileMs = program.ms;
  result.ok = true;
  status.textContent = `done: ${p.weights.length} weights, swapped twice without recompiling (${
    navigator.userAgent.match(/Chrom\w+\/[\d.]+/)?.[0] ?? "browser"
  })`;
} catch (e) {
  result.error = String(e && e.stack || e);
  status.textContent = `failed: ${e}`;
}
document.querySelector("#result").textContent = JSON.stringify(result);
