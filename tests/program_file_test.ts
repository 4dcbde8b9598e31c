import assert from "node:assert/strict";
import {
  KILN_FORMAT_VERSION,
  LITERAL_ALIGN,
  readProgramFile,
  writeProgramFile,
} from "../core/program_file.ts";

function _bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

Deno.test("writeProgramFile() / readProgramFile() round-trip IR and aligned literals", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/p.kiln`;
    const ir = _bytes(777, 1);
    const lits = [
      { name: "w", dtype: "float32" as const, dims: [3, 5], bytes: _bytes(60, 2) },
      { name: "b", dtype: "int64" as const, dims: [600], bytes: _bytes(4800, 3) },
    ];
    await writeProgramFile(path, {
      target: "ref",
      kilnVersion: "test",
      ir,
      literals: lits,
      program: { x: 1 },
    });

    await t.step("contents come back", async () => {
      const got = await readProgramFile(path);
      assert.deepEqual(got.ir, ir);
      assert.equal(got.meta.target, "ref");
      assert.deepEqual(got.meta.program, { x: 1 });
      assert.equal(got.literals.length, 2);
      assert.deepEqual(got.literals[0], lits[0].bytes);
      assert.deepEqual(got.literals[1], lits[1].bytes);
      for (const e of got.meta.literals) assert.equal(e.offset % LITERAL_ALIGN, 0);
    });

    await t.step("a flipped literal byte fails its checksum", async () => {
      const bytes = await Deno.readFile(path);
      const { meta } = await readProgramFile(path);
      bytes[meta.literals[1].offset + 7] ^= 0xff;
      await Deno.writeFile(`${dir}/bad.kiln`, bytes);
      await assert.rejects(readProgramFile(`${dir}/bad.kiln`), /literal 'b' fails its checksum/);
    });

    await t.step("a flipped byte in the IR or META section fails its checksum", async () => {
      const bytes = await Deno.readFile(path);
      const view = new DataView(bytes.buffer);
      const metaOff = Number(view.getBigUint64(24 + 8, true)); // section table entry 0: META
      const irOff = Number(view.getBigUint64(24 + 24 + 8, true)); // entry 1: IR
      const a = bytes.slice();
      a[irOff + 5] ^= 0x10;
      await Deno.writeFile(`${dir}/ir.kiln`, a);
      await assert.rejects(readProgramFile(`${dir}/ir.kiln`), /IR section fails its checksum/);
      const b = bytes.slice();
      b[metaOff + 3] ^= 0x01;
      await Deno.writeFile(`${dir}/meta.kiln`, b);
      await assert.rejects(readProgramFile(`${dir}/meta.kiln`), /META section fails its checksum/);
    });

    await t.step("a truncated file is refused with the byte range", async () => {
      const bytes = await Deno.readFile(path);
      await Deno.writeFile(`${dir}/short.kiln`, bytes.subarray(0, bytes.length - 100));
      await assert.rejects(readProgramFile(`${dir}/short.kiln`), /truncated/);
    });

    await t.step("a future version is refused", async () => {
      const bytes = await Deno.readFile(path);
      new DataView(bytes.buffer).setUint32(8, KILN_FORMAT_VERSION + 1, true);
      await Deno.writeFile(`${dir}/future.kiln`, bytes);
      await assert.rejects(readProgramFile(`${dir}/future.kiln`), /format version 2.*newer kiln/);
    });

    await t.step("garbage is not a program file", async () => {
      await Deno.writeFile(`${dir}/junk.kiln`, _bytes(5000, 9));
      await assert.rejects(readProgramFile(`${dir}/junk.kiln`), /not a kiln program file/);
      await Deno.writeFile(`${dir}/tiny.kiln`, new Uint8Array(3));
      await assert.rejects(readProgramFile(`${dir}/tiny.kiln`), /not a kiln program file/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
