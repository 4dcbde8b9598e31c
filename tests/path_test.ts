// Paths by the platform's rules (core/path.ts): containment (`within`, which guards every
// location a model or weight set names) holds under POSIX and under Windows rules (drive
// letters, backslashes, case of the separator), checked here with node:path's two flavours;
// and the POSIX subset used where there is no node:path agrees with node:path's POSIX rules.
import assert from "node:assert/strict";
import nodePath from "node:path";
import { fileUrlPath, type PathOps, paths, pathsOver, posixPathOps } from "../core/path.ts";

Deno.test("paths: containment and joins under POSIX and Windows rules", async (t) => {
  await t.step("POSIX", () => {
    const p = pathsOver(nodePath.posix as unknown as PathOps);
    assert.ok(p.within("/w/models/a.bin", "/w/models"));
    assert.ok(p.within("/w/models", "/w/models"));
    assert.ok(!p.within("/w/models-evil/a.bin", "/w/models"), "a sibling with the folder's name as prefix");
    assert.ok(!p.within("/w/a.bin", "/w/models"));
    assert.equal(p.join("/w/models", "sub/a.bin"), "/w/models/sub/a.bin");
    assert.equal(p.dirname("/w/models/a.onnx"), "/w/models");
    assert.equal(p.absolute("a.onnx", "/w"), "/w/a.onnx");
  });
  await t.step("Windows", () => {
    const p = pathsOver(nodePath.win32 as unknown as PathOps);
    assert.ok(p.within("C:\\w\\models\\a.bin", "C:\\w\\models"));
    assert.ok(p.within("C:\\w\\models\\sub\\a.bin", "C:\\w\\models"));
    assert.ok(!p.within("C:\\w\\models-evil\\a.bin", "C:\\w\\models"));
    assert.ok(!p.within("D:\\w\\models\\a.bin", "C:\\w\\models"), "another drive");
    assert.ok(!p.within("C:\\w\\a.bin", "C:\\w\\models"));
    // ONNX locations use "/": joined by Windows rules
    assert.equal(p.join("C:\\w\\models", "sub/a.bin"), "C:\\w\\models\\sub\\a.bin");
    assert.equal(p.dirname("C:\\w\\models\\a.onnx"), "C:\\w\\models");
    assert.equal(p.basename("C:\\w\\models\\a.onnx"), "a.onnx");
    assert.equal(p.absolute("a.onnx", "C:\\w"), "C:\\w\\a.onnx");
  });
  await t.step("the POSIX subset agrees with node:path's POSIX rules", () => {
    const cases = ["/a/b/c.onnx", "a/b", "/a/../b/./c", "rel/./x/../y", "/", "/a/b/", "a"];
    for (const c of cases) {
      assert.equal(posixPathOps.dirname(c), nodePath.posix.dirname(c), `dirname ${c}`);
      assert.equal(posixPathOps.basename(c), nodePath.posix.basename(c), `basename ${c}`);
      assert.equal(posixPathOps.isAbsolute(c), nodePath.posix.isAbsolute(c), `isAbsolute ${c}`);
      assert.equal(posixPathOps.resolve("/w", c), nodePath.posix.resolve("/w", c), `resolve ${c}`);
      // (a trailing separator, which node:path's join keeps, is not a case kiln makes)
      if (!c.endsWith("/")) {
        assert.equal(posixPathOps.join("/w", c), nodePath.posix.join("/w", c), `join ${c}`);
      }
      assert.equal(
        posixPathOps.relative("/w/x", c.startsWith("/") ? c : `/w/${c}`),
        nodePath.posix.relative("/w/x", c.startsWith("/") ? c : `/w/${c}`),
        `relative ${c}`,
      );
    }
  });
  await t.step("this host's paths and file: URLs", () => {
    assert.equal(paths.ops.sep, nodePath.sep);
    assert.equal(
      fileUrlPath(new URL("file:///tmp/a%20b.onnx")),
      Deno.build.os === "windows" ? "\\tmp\\a b.onnx" : "/tmp/a b.onnx",
    );
  });
});

Deno.test("an atomic write needs write access to the file's own folder only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_atomic_" });
  try {
    const fs = new URL("../core/fs.ts", import.meta.url).href;
    const code = `import { writeFileAtomic } from ${JSON.stringify(fs)};
await writeFileAtomic(${JSON.stringify(`${dir}/out.bin`)}, new Uint8Array([1, 2, 3]), "Test file");`;
    await Deno.writeTextFile(`${dir}/main.ts`, code);
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-lock", "--allow-read", `--allow-write=${dir}`, `${dir}/main.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    assert.deepEqual([...await Deno.readFile(`${dir}/out.bin`)], [1, 2, 3]);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes("kiln-tmp"));
    assert.deepEqual(left, [], "no temporary file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SHA-1 through WebCrypto (hosts without node:crypto) equals node:crypto's", async () => {
  const { sha1HexWebCrypto, sha1HexOf } = await import("../core/host.ts");
  for (const n of [0, 1, 55, 56, 64, 1000, 1 << 20]) {
    const b = new Uint8Array(n).map((_, i) => (i * 31 + n) & 0xff);
    assert.equal(await sha1HexWebCrypto(b), await sha1HexOf(b), `${n} bytes`);
  }
  assert.equal(
    await sha1HexWebCrypto(new TextEncoder().encode("abc")),
    "a9993e364706816aba3e25717850c26c9cd0d89d",
  );
});
