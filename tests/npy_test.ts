// .npy reader/writer tests: round trips of every dtype, NumPy's exact byte layout, versions 1-3,
// big-endian input, and the errors.
import assert from "node:assert/strict";
import { NPY_DTYPES, NpyError, readNpy, readNpyFile, writeNpy, writeNpyFile } from "../core/npy.ts";
import { KilnError } from "../core/errors.ts";
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

const f4 = new Uint8Array(8);

Deno.test("readNpy: the header is read strictly; ambiguous or out-of-range headers are refused", async (t) => {
  const h = (dict: string, data = f4, major = 1) => npyBytes(dict, data, major);
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "a repeated key (Python keeps the last)",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (1,)}"),
      /malformed header \(key 'shape' appears twice, which is ambiguous at byte 56 of the header\)/,
    ],
    [
      "an extra key",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}"),
      /unexpected key 'extra' \(a \.npy header has exactly descr, fortran_order and shape\)/,
    ],
    ["a missing key", h("{'descr': '<f4', 'shape': (2,)}"), /the header has no 'fortran_order'/],
    [
      "a negative dim",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}"),
      /shape entry 0 is negative/,
    ],
    [
      "a dim of 2^31",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2147483648)}"),
      /shape entry 1 \(2147483648\) exceeds 2\^31 - 1/,
    ],
    [
      "a fractional dim",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}"),
      /expected ',' or '\)' in the shape/,
    ],
    [
      "a bool dim",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (True,)}"),
      /shape entry 0 is not an integer/,
    ],
    [
      "an integer, not a tuple",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}"),
      /shape \(2\) is an integer, not a tuple: write \(2,\)/,
    ],
    [
      "a 1-D Fortran-order array (still refused: kiln reads C order)",
      h("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }"),
      /Fortran-order arrays are not supported \(float32\[2\]\): kiln reads C order/,
    ],
    [
      "fortran_order not a bool",
      h("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }"),
      /fortran_order is not True or False/,
    ],
    [
      "trailing bytes",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"),
      /float32\[1\] needs 4 bytes of data, the file has 8 \(4 trailing bytes\)/,
    ],
    [
      "a shape whose byte count passes 2^53",
      h("{'descr': '<f8', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }"),
      /truncated data: float64\[2147483647,2147483647,2147483647\] needs 79228162403583873202826248184 bytes/,
    ],
    [
      "a native byte order for bfloat16 bits",
      h("{'descr': '=V2', 'fortran_order': False, 'shape': (4,), }"),
      /'<V2' or '>V2'/,
    ],
    ["a native byte order", h("{'descr': '=f4', 'fortran_order': False, 'shape': (2,), }"), /'<f4' or '>f4'/],
    [
      "a structured dtype",
      h("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"),
      /structured/,
    ],
    [
      "a minor version",
      (() => {
        const b = h("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }");
        b[7] = 1;
        return b;
      })(),
      /unsupported \.npy format version 1\.1/,
    ],
    [
      "a bool that is neither 0 nor 1",
      h("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", new Uint8Array([1, 0, 2])),
      /bool element 2 is 2, not 0 or 1/,
    ],
    [
      "a Python 2 long in a version 3.0 header (NumPy reads 'L' only in 1.0 and 2.0)",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", f4, 3),
      /expected ',' or '\)' in the shape/,
    ],
    [
      "a key 200,000 bytes long",
      h(`{'${"k".repeat(200_000)}': 1}`, f4, 2),
      /unexpected key 'k{60}\.\.\.'/,
    ],
    [
      "more than 64 dims",
      h(`{'descr': '<f4', 'fortran_order': False, 'shape': (${"1, ".repeat(65)}), }`, new Uint8Array(4)),
      /the shape has more than 64 dims, kiln's tensors at most 64/,
    ],
    [
      "text after the dict",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x"),
      /text after the dict/,
    ],
    [
      "a header length past the file",
      h("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }").subarray(0, 60),
      /truncated header \(60 bytes, the header ends at 128\)/,
    ],
  ];
  for (const [what, bytes, re] of cases) {
    await t.step(what, () => {
      assert.throws(
        () => readNpy(bytes, ".npy file 'x.npy'"),
        (e: unknown) =>
          e instanceof NpyError && e instanceof KilnError && e.message.startsWith(".npy file 'x.npy': "),
      );
      assert.throws(() => readNpy(bytes), re);
    });
  }
  await t.step(
    "what NumPy writes or accepts: either quote, Python 2 longs, any spacing, no trailing comma",
    () => {
      const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
      for (
        const dict of [
          '{"descr": "<f4", "fortran_order": False, "shape": (2, 3)}',
          "{'descr':'<f4','fortran_order':False,'shape':(2L,3L),}",
          "{ 'shape' : ( 2 , 3 , ) , 'fortran_order' : False , 'descr' : '<f4' }",
        ]
      ) {
        for (const major of dict.includes("L") ? [1, 2] : [1, 2, 3]) {
          const t = readNpy(h(dict, data, major));
          const got = [t.dtype, t.dims, [...t.data as Float32Array]];
          assert.deepEqual(got, ["float32", [2, 3], [1, 2, 3, 4, 5, 6]]);
        }
      }
    },
  );
});

Deno.test("readNpy: bfloat16 bits as NumPy ('|V2') and ml_dtypes ('<V2') write them; '>V2' is swapped", () => {
  const bits = new Uint8Array([0x80, 0x3f, 0x00, 0xc0]); // 1.0, -2.0 as bfloat16, little-endian
  for (const descr of ["|V2", "<V2", "V2"]) {
    const t = readNpy(npyBytes(`{'descr': '${descr}', 'fortran_order': False, 'shape': (2,), }`, bits));
    assert.deepEqual([t.dtype, [...t.data as Uint16Array]], ["bfloat16", [0x3f80, 0xc000]]);
  }
  const be = readNpy(npyBytes("{'descr': '>V2', 'fortran_order': False, 'shape': (2,), }", bits));
  assert.deepEqual([...be.data as Uint16Array], [0x803f, 0x00c0]);
});

Deno.test("writeNpy: bools are written as 0 or 1; dims are checked", () => {
  const t = readNpy(writeNpy({ dtype: "bool", dims: [3], data: new Uint8Array([0, 7, 1]) }));
  assert.deepEqual([...t.data as Uint8Array], [0, 1, 1]);
  assert.throws(
    () => writeNpy({ dtype: "float32", dims: [-1], data: new Float32Array(1) }),
    /its dims are not integers in 0\.\.2\^31 - 1/,
  );
});

Deno.test("writeNpyFile/readNpyFile: round trip through a file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_npy_test_" });
  try {
    const x = pattern("int64", [3, 2]);
    await writeNpyFile(`${dir}/x.npy`, x);
    assert.deepEqual((await readNpyFile(`${dir}/x.npy`)).data, x.data);
    await assert.rejects(
      readNpyFile(`${dir}/missing.npy`),
      (e: unknown) =>
        e instanceof KilnError && e.code === "io" &&
        /\.npy file '.*missing\.npy' does not exist/.test(e.message),
    );
    await Deno.writeFile(
      `${dir}/bad.npy`,
      npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4),
    );
    await assert.rejects(
      readNpyFile(`${dir}/bad.npy`),
      (e: unknown) =>
        e instanceof NpyError && e instanceof KilnError && e.code === "format" &&
        e.message.startsWith(`.npy file '${dir}/bad.npy': truncated data`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
