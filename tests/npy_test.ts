// .npy reader/writer tests: round trips of every dtype, NumPy's exact byte layout, versions 1-3,
// big-endian input, and the errors.
import assert from "node:assert/strict";
import { NPY_DTYPES, readNpy, readNpyFile, writeNpy, writeNpyFile } from "../core/npy.ts";
import { dtypeSize, elementCount, type Tensor, viewAs } from "../core/tensor.ts";

/** A tensor of `dtype` whose bytes are a deterministic pattern. */
function pattern(dtype: Tensor["dtype"], dims: number[]): Tensor {
  const bytes = new Uint8Array(elementCount(dims) * dtypeSize(dtype));
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11) & 0xff;
  if (dtype === "bool") { for (let i = 0; i < bytes.length; i++) bytes[i] &= 1; }
  return { dtype, dims, data: viewAs(dtype, bytes) };
}

/** A .npy file as NumPy writes it: magic, version, header padded with spaces to 64 bytes, data. */
function npyBytes(header: string, data: Uint8Array, major = 1, big = false): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const pad = (64 - ((prefix + header.length + 1) % 64)) % 64;
  const h = new TextEncoder().encode(header + " ".repeat(pad) + "\n");
  const out = new Uint8Array(prefix + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, h.length, !big);
  else dv.setUint32(8, h.length, true);
  out.set(h, prefix);
  out.set(data, prefix + h.length);
  return out;
}

Deno.test("writeNpy/readNpy: every dtype round-trips with its dims and bytes", async (t) => {
  for (const dtype of NPY_DTYPES) {
    for (const dims of [[2, 3], [5], [], [0, 4]]) {
      await t.step(`${dtype}[${dims}]`, () => {
        const x = pattern(dtype, dims);
        const y = readNpy(writeNpy(x));
        assert.equal(y.dtype, dtype);
        assert.deepEqual(y.dims, dims);
        assert.deepEqual(y.data, x.data);
      });
    }
  }
});

Deno.test("writeNpy: writes NumPy's exact layout (version 1.0, 64-byte aligned header)", () => {
  const x: Tensor = { dtype: "float32", dims: [2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) };
  const want = npyBytes(
    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
    new Uint8Array(x.data.buffer),
  );
  const got = writeNpy(x);
  assert.deepEqual(got, want);
  assert.equal((got.length - 24) % 64, 0);
  const b = writeNpy({ dtype: "bool", dims: [3], data: new Uint8Array([1, 0, 1]) });
  assert.match(
    new TextDecoder().decode(b.subarray(10, 70)),
    /'descr': '\|b1', 'fortran_order': False, 'shape': \(3,\)/,
  );
  const h = writeNpy({ dtype: "float16", dims: [], data: new Uint16Array([0x3c00]) });
  assert.match(
    new TextDecoder().decode(h.subarray(10, 70)),
    /'descr': '<f2', 'fortran_order': False, 'shape': \(\)/,
  );
});

Deno.test("readNpy: reads versions 2.0 and 3.0 and big-endian data", () => {
  const data = new Uint8Array(new Int32Array([1, -2]).buffer);
  const v2 = readNpy(npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", data, 2));
  assert.deepEqual(Array.from(v2.data as Int32Array), [1, -2]);
  const v3 = readNpy(npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", data, 3));
  assert.deepEqual(v3.dims, [1, 2]);
  const be = new Uint8Array([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]);
  const big = readNpy(npyBytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", be));
  assert.deepEqual(Array.from(big.data as Int32Array), [1, -2]);
});

Deno.test("readNpy: clear errors for bad files", async (t) => {
  const f4 = new Uint8Array(8);
  const cases: [string, Uint8Array, RegExp][] = [
    ["bad magic", new TextEncoder().encode("PK\x03\x04 not numpy at all"), /not a \.npy file \(bad magic\)/],
    [
      "unknown version",
      (() => {
        const b = npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f4);
        b[6] = 9;
        return b;
      })(),
      /unsupported \.npy format version 9\.0/,
    ],
    [
      "fortran order",
      npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", new Uint8Array(16)),
      /Fortran-order arrays are not supported \(float32\[2,2\]\)/,
    ],
    [
      "unknown descr",
      npyBytes("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", f4),
      /unsupported dtype descr '<c8'/,
    ],
    [
      "object arrays",
      npyBytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", f4),
      /unsupported dtype descr '\|O'/,
    ],
    [
      "truncated data",
      npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4),
      /truncated data: float32\[3\] needs 12 bytes, the file has 8/,
    ],
    [
      "truncated header",
      npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f4).subarray(0, 40),
      /truncated header/,
    ],
    ["malformed header", npyBytes("{'descr': '<f4'}", f4), /malformed header/],
  ];
  for (const [what, bytes, re] of cases) {
    await t.step(what, () => assert.throws(() => readNpy(bytes), re));
  }
});

Deno.test("writeNpyFile/readNpyFile: round trip through a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_npy_test_" });
  try {
    const x = pattern("int64", [3, 2]);
    await writeNpyFile(`${dir}/x.npy`, x);
    assert.deepEqual((await readNpyFile(`${dir}/x.npy`)).data, x.data);
    await assert.rejects(readNpyFile(`${dir}/missing.npy`), /Cannot read \.npy file '.*missing\.npy'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
