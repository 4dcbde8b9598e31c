// The README's TypeScript snippets run as written (their `./mod.ts` is this repository's), from
// the repository's folder, on the model it ships (examples/tinynet): every ```ts block not marked
// `ignore` is written to a temporary file and run by Deno with read access to the repository and
// write access to the temporary folder only. A snippet that stops working fails here.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

function _snippets(markdown: string): string[] {
  const out: string[] = [];
  const re = /^```ts([^\n]*)\n([\s\S]*?)^```$/gm;
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) {
    if (!/\bignore\b/.test(m[1])) out.push(m[2]);
  }
  return out;
}

Deno.test("README: every TypeScript snippet runs as written", async (t) => {
  const snippets = _snippets(await Deno.readTextFile(`${ROOT}README.md`));
  assert.ok(snippets.length >= 2, `${snippets.length} snippets found`);
  const tmp = await Deno.makeTempDir({ prefix: "kiln_readme_" });
  try {
    for (const [i, code] of snippets.entries()) {
      await t.step(
        `snippet ${i + 1}: ${
          code.split("\n").find((l) => l.trim() && !l.startsWith("import"))?.slice(0, 60)
        }`,
        async () => {
          const file = `${tmp}/snippet_${i + 1}.ts`;
          await Deno.writeTextFile(file, code.replaceAll('"./mod.ts"', JSON.stringify(`${ROOT}mod.ts`)));
          const out = await new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "--no-lock",
              `--config=${ROOT}deno.json`,
              `--allow-read`,
              `--allow-write=${tmp}`,
              "--allow-env",
              file,
            ],
            cwd: ROOT,
            stdout: "piped",
            stderr: "piped",
            env: { TMPDIR: tmp },
          }).output();
          assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        },
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
