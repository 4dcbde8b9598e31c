// The browser example (examples/browser/): served on localhost by examples/browser/serve.ts and
// driven by headless Chromium (Debian's `chromium`, installed by tools/test.sh; the test says why
// it skips without it). The page fetches tinynet and two safetensors weight sets over HTTP,
// compiles once with the weights deferred, binds v1, swaps to v2 and back, and loads a program file
// with v1 baked in (its checksums verified with WebCrypto there); its outputs must be
// Deno's for the same weights (within 1e-6: the browser may run the other SIMD build of the core),
// the swap back to v1 must give v1's outputs bit for bit, and the page must render (a screenshot).
// Headless Chromium's virtual time budget lets the page finish deterministically; under it the
// page's own timings read about 0 ms (a real browser shows real ones).
import assert from "node:assert/strict";
import { compile, parseOnnx, WeightSet } from "../mod.ts";
import { serveExample } from "../examples/browser/serve.ts";

const ROOT = new URL("../", import.meta.url).pathname;

async function _chromium(): Promise<string | undefined> {
  for (const c of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      const o = await new Deno.Command(c, { args: ["--version"], stdout: "null", stderr: "null" }).output();
      if (o.success) return c;
    } catch {
      // not this one
    }
  }
  return undefined;
}

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--hide-scrollbars",
  "--virtual-time-budget=60000",
];

Deno.test("the browser example runs in headless Chromium: fetch, compile once, swap, swap back", async (t) => {
  const chrome = await _chromium();
  if (!chrome) {
    console.log("  skipped: no chromium on PATH (tools/test.sh installs Debian's `chromium` as root)");
    return;
  }
  const server = await serveExample(0);
  const dir = await Deno.makeTempDir({ prefix: "kiln_browser_test_" });
  try {
    const out = await new Deno.Command(chrome, {
      args: [...FLAGS, "--dump-dom", server.url],
      stdout: "piped",
      stderr: "null",
    }).output();
    const dom = new TextDecoder().decode(out.stdout);
    const m = /<pre id="result">([^<]*)<\/pre>/.exec(dom);
    assert.ok(m && m[1], `the page left no result:\n${dom.slice(0, 2000)}`);
    const r = JSON.parse(m[1].replaceAll("&quot;", '"').replaceAll("&amp;", "&")) as {
      ok: boolean;
      error?: string;
      outputs: Record<string, number[]>;
      steps: Record<string, { copied: number }>;
    };
    assert.ok(r.ok, `the page failed: ${r.error}`);

    await t.step("outputs are Deno's for both weight sets; the swap back gives v1's bits", async () => {
      const p = compile(
        await parseOnnx(`${ROOT}examples/tinynet/tinynet.onnx`, {
          deferExternalWeights: true,
          inputDims: { x: [1, 3, 16, 16] },
        }),
        "ref",
      );
      try {
        const x = new Float32Array(768).map((_, i) => Math.sin(i * 0.37));
        for (const v of ["v1", "v2"]) {
          await p.bindWeights(await WeightSet.fromSafetensors(p, new URL(`${server.url}${v}.safetensors`)));
          const want = Array.from(
            (await p.eval({ x: { dtype: "float32", dims: [1, 3, 16, 16], data: x } })).probs
              .data as Float32Array,
          );
          const got = r.outputs[v];
          assert.equal(got.length, want.length);
          for (let i = 0; i < want.length; i++) {
            assert.ok(
              Math.abs(got[i] - want[i]) <= 1e-6,
              `${v}: probs[${i}] ${got[i]} in the browser, ${want[i]} here`,
            );
          }
        }
        assert.notDeepEqual(r.outputs.v1, r.outputs.v2, "the swap changed the outputs");
        assert.deepEqual(r.outputs["v1 again"], r.outputs.v1, "swapping back restores v1 bit for bit");
        assert.deepEqual(
          r.outputs["baked v1"],
          r.outputs.v1,
          "the program file with v1 baked in, loaded in the page",
        );
        for (const v of ["v1", "v2", "v1 again"]) {
          assert.equal(r.steps[v].copied, 8, `${v}: every weight bound`);
        }
      } finally {
        p.dispose();
      }
    });

    await t.step("the page renders (screenshot)", async () => {
      const shot = `${dir}/page.png`;
      await new Deno.Command(chrome, {
        args: [...FLAGS, "--window-size=1000,640", `--screenshot=${shot}`, server.url],
        stdout: "null",
        stderr: "null",
        cwd: dir,
      }).output();
      const png = await Deno.readFile(shot);
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
      assert.ok(png.byteLength > 10_000, `screenshot of ${png.byteLength} bytes`);
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
