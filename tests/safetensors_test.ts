// safetensors headers checked as strictly as the reference implementation (huggingface
// safetensors, Rust), and duplicate keys refused: every bad header fails with one KilnError that
// names the file and lists each problem with its tensor; odd tensor names are names like any other.
import assert from "node:assert/strict";
import { KilnError } from "../core/errors.ts";
import {
  readSafetensorsIndex,
  SafetensorsError,
  safetensorsIndexOf,
  writeSafetensors,
} from "../core/weights/safetensors.ts";
import { WeightSet } from "../core/weights/weight_set.ts";
import type { WeightSpec } from "../core/weights/weight_set.ts";

const enc = new TextEncoder();

/** A safetensors file: the length prefix (or `len`), the header text as given, then `data`. */
function st(header: string | Uint8Array, data = new Uint8Array(0), len?: bigint): Uint8Array {
  const h = typeof header === "string" ? enc.encode(header) : header;
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, len ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const F = (name: string, dtype: string, shape: string, offsets: string) =>
  `"${name}":{"dtype":"${dtype}","shape":${shape},"data_offsets":${offsets}}`;

/** The problems `bytes` is refused with (checking the error names the file). */
function problems(bytes: Uint8Array): string[] {
  try {
    safetensorsIndexOf(bytes, "/w/m.safetensors");
  } catch (e) {
    assert.ok(e instanceof SafetensorsError && e instanceof KilnError, String(e));
    assert.equal(e.code, "weights");
    assert.ok(e.message.includes("'/w/m.safetensors'"), e.message);
    return e.problems;
  }
  assert.fail("accepted");
}

Deno.test("safetensors: the length prefix and the header's encoding", async (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["shorter than the prefix", new Uint8Array(5), /is not a safetensors file: it is only 5 bytes/],
    [
      "a header over 100 MB",
      st("{}", undefined, 100_000_001n),
      /header length 100000001 exceeds the 100 MB cap/,
    ],
    [
      "a header length of 2^64 - 1",
      st("{}", undefined, (1n << 64n) - 1n),
      /header length 18446744073709551615/,
    ],
    [
      "a header past the file",
      st("{}", undefined, 3n),
      /is truncated: its header needs 11 bytes, the file has 10/,
    ],
    ["an empty header", st(""), /its header is empty/],
    ["a header that is not UTF-8", st(new Uint8Array([0x7b, 0xff, 0x7d])), /its header is not valid UTF-8/],
    [
      "a byte-order mark",
      st(new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])),
      /not valid JSON: unexpected character/,
    ],
    ["a JSON array", st("[]"), /its header is an array, not a JSON object/],
    ["a trailing comma", st('{"a":1,}'), /not valid JSON: expected a key/],
    ["text after the object", st("{} x"), /not valid JSON: text after the JSON value at character 3/],
    ["a lone surrogate", st('{"\\ud800":{}}'), /a \\u escape makes a lone surrogate/],
    ["a raw control character", st('{"a\nb":{}}'), /control character in a string/],
    ["nesting deeper than 16", st(`{"a":${"[".repeat(40)}${"]".repeat(40)}}`), /nested more than 16 levels/],
  ];
  for (const [what, bytes, re] of cases) {
    await t.step(what, () => {
      assert.throws(() => safetensorsIndexOf(bytes, "/w/m.safetensors"), (e: unknown) => {
        assert.ok(e instanceof KilnError && e.message.includes("'/w/m.safetensors'"), String(e));
        assert.match(e.message, re);
        assert.ok(!e.message.includes("\n"), "one line");
        return true;
      });
    });
  }
  await t.step(
    "leading whitespace and trailing padding are JSON whitespace (the reference reads them)",
    () => {
      const i = safetensorsIndexOf(
        st(` \n{${F("a", "U8", "[2]", "[0,2]")}}\t\r\n  `, new Uint8Array([1, 2])),
        "m",
      );
      assert.deepEqual([...i.entries.keys()], ["a"]);
    },
  );
});

Deno.test("safetensors: every entry is checked; all problems of a file are listed at once", () => {
  const d = new Uint8Array(64);
  const p = (entries: string[], data = d) => problems(st(`{${entries.join(",")}}`, data));
  assert.deepEqual(p([F("a", "F33", "[2]", "[0,8]"), F("b", "F8_E4M3", "[2]", "[8,10]")]).slice(0, 2), [
    "tensor 'a': dtype 'F33' is not a safetensors dtype",
    "tensor 'b': dtype F8_E4M3 is not supported by kiln",
  ]);
  assert.deepEqual(p([`"a":{"dtype":32,"shape":[2],"data_offsets":[0,64]}`]), [
    "tensor 'a': its dtype is the number 32, not a string",
  ]);
  const shapes: [string, RegExp][] = [
    ["[-1]", /dim 0 is the number -1, which is negative/],
    ["[2.0]", /dim 0 is the number 2\.0, which is not written as an integer/],
    ["[1e1]", /dim 0 is the number 1e1, which is not written as an integer/],
    ['["2"]', /dim 0 is the string '2', not an integer/],
    ["[9007199254740993]", /dim 0 is the number 9007199254740993, which is above 2\^53 - 1/],
    ["[null]", /dim 0 is null, not an integer/],
    ["2", /its shape is the number 2, not an array/],
    ["[67108864,67108864,67108864]", /its element count or byte size overflows 64 bits/],
    // counted as the reference counts, in 64 bits and in order: an overflow before a 0 is an error
    ["[4294967296,4294967296,0]", /its element count or byte size overflows 64 bits/],
    [
      "[1073741824,1073741824,0]",
      /data_offsets \[0, 64\] hold 64 bytes, its shape \[1073741824,1073741824,0\] of float32 needs 0/,
    ],
    ["[2147483648,2147483648,2]", /its element count or byte size overflows 64 bits/],
  ];
  for (const [shape, re] of shapes) {
    const got = p([F("a", "F32", shape, "[0,64]")]);
    assert.equal(got.length, 1, got.join("; "));
    assert.match(got[0], re);
  }
  const offsets: [string, RegExp][] = [
    ["[0]", /its data_offsets are \[0\], not \[begin, end\]/],
    ["[0,64,64]", /not \[begin, end\]/],
    ["[-8,56]", /begin is the number -8, which is negative/],
    ["[0,64.0]", /end is the number 64\.0, which is not written as an integer/],
    ["[64,0]", /data_offsets \[64, 0\] end before they begin/],
    ["[0,72]", /data_offsets \[0, 72\] run past the end of the data \(64 bytes after the header\)/],
    ["[0,32]", /data_offsets \[0, 32\] hold 32 bytes, its shape \[16\] of float32 needs 64/],
  ];
  for (const [off, re] of offsets) {
    const got = p([F("a", "F32", "[16]", off)]);
    assert.match(got[0], re, got.join("; "));
  }
  assert.deepEqual(p([F("a", "U8", `[${Array(65).fill(1)}]`, "[0,1]")], d.subarray(0, 1)), [
    "tensor 'a': its shape has 65 dims, kiln's tensors at most 64",
  ]);
  assert.match(
    problems(st(`{"a":{"shape":[${Array(2000).fill(1)}]}}`))[0],
    /its header holds an array of more than 1024 items \(a shape has at most 64 dims\)/,
  );
  // many problems: the first 50 listed, the rest counted, the total in the head
  const many = `{${
    Array.from({ length: 60 }, (_, k) => F(`t${k}`, "XX", "[1]", `[${k},${k + 1}]`)).join(",")
  }}`;
  const e60 = (() => {
    try {
      safetensorsIndexOf(st(many, d.subarray(0, 60)), "many.st");
    } catch (e) {
      return e as SafetensorsError;
    }
  })()!;
  assert.match(e60.message, /^Safetensors file 'many\.st' has an invalid header: 60 problems\n/);
  assert.equal(e60.problems.length, 51);
  assert.equal(e60.problems[50], "... and 10 more");
  assert.deepEqual(p([`"a":{"dtype":"U8","shape":[64],"data_offsets":[0,64],"extra":1}`]), [
    "tensor 'a': unknown field 'extra' (an entry has only dtype, shape and data_offsets)",
  ]);
  assert.deepEqual(p([`"a":[1]`]), [
    "tensor 'a': its entry is an array, not an object of dtype, shape and data_offsets",
  ]);
  assert.deepEqual(p([`"a":{"shape":[64],"data_offsets":[0,64]}`]), ["tensor 'a': its entry has no dtype"]);
  // three tensors wrong at once, each named
  const three = p([
    F("x", "F32", "[-1]", "[0,4]"),
    F("y", "XX", "[1]", "[4,8]"),
    F("z", "F32", "[1]", "[8,4]"),
  ]);
  assert.equal(three.length, 3, three.join("; "));
  assert.match(three.join("\n"), /tensor 'x'.*\n.*tensor 'y'.*\n.*tensor 'z'/);
  const e = (() => {
    try {
      safetensorsIndexOf(
        st(`{${F("x", "F32", "[-1]", "[0,4]")},${F("y", "XX", "[1]", "[4,8]")}}`, d.subarray(0, 8)),
        "f.st",
      );
    } catch (e) {
      return e as Error;
    }
  })();
  assert.match(e!.message, /^Safetensors file 'f\.st' has an invalid header: 2 problems\n {2}- tensor 'x'/);
});

Deno.test("safetensors: tensors cover the data exactly (no overlap, gap or trailing bytes)", () => {
  const d = (n: number) => new Uint8Array(n);
  assert.deepEqual(problems(st(`{${F("a", "U8", "[4]", "[0,4]")},${F("b", "U8", "[4]", "[2,6]")}}`, d(6))), [
    "tensor 'b' (data bytes 2..6) overlaps tensor 'a' (data bytes 0..4)",
  ]);
  assert.deepEqual(
    problems(st(`{${F("a", "U8", "[4]", "[0,4]")},${F("b", "U8", "[4]", "[6,10]")}}`, d(10))),
    [
      "data bytes 4..6 belong to no tensor (a gap after 'a' before 'b')",
    ],
  );
  assert.deepEqual(problems(st(`{${F("a", "U8", "[4]", "[2,6]")}}`, d(6))), [
    "data bytes 0..2 belong to no tensor (a gap before 'a')",
  ]);
  assert.deepEqual(problems(st(`{${F("a", "U8", "[4]", "[0,4]")}}`, d(9))), [
    "5 trailing bytes belong to no tensor (the data has 9 bytes, the tensors end at 4)",
  ]);
  assert.deepEqual(problems(st("{}", d(3))), [
    "3 trailing bytes belong to no tensor (the data has 3 bytes, the tensors end at 0)",
  ]);
  // the same range twice
  assert.equal(
    problems(st(`{${F("a", "U8", "[4]", "[0,4]")},${F("b", "U8", "[4]", "[0,4]")}}`, d(4))).length,
    1,
  );
  // a zero-length tensor inside another's range overlaps it (as in the reference); at a boundary it is fine
  assert.match(
    problems(st(`{${F("a", "U8", "[4]", "[0,4]")},${F("z", "U8", "[0]", "[2,2]")}}`, d(4)))[0],
    /overlaps/,
  );
  const ok = safetensorsIndexOf(
    st(
      `{${F("z", "U8", "[0,5]", "[4,4]")},${F("a", "U8", "[4]", "[0,4]")},${F("y", "F32", "[0]", "[0,0]")}}`,
      d(4),
    ),
    "m",
  );
  assert.deepEqual([...ok.entries.keys()], ["z", "a", "y"]);
  // in any order in the header: sorted by offset
  const h = `{${F("b", "U8", "[2]", "[2,4]")},${F("a", "U8", "[2]", "[0,2]")}}`;
  const o = safetensorsIndexOf(st(h, d(4)), "m");
  assert.deepEqual([o.entries.get("a")!.offset, o.entries.get("b")!.offset], [
    8 + h.length,
    8 + h.length + 2,
  ]);
});

Deno.test("safetensors: duplicate keys are refused at every level, however they are spelled", () => {
  const d = new Uint8Array(4);
  assert.deepEqual(problems(st(`{${F("a", "U8", "[4]", "[0,4]")},${F("a", "U8", "[4]", "[0,4]")}}`, d)), [
    "tensor 'a' appears more than once in the header",
  ]);
  assert.deepEqual(
    problems(st(`{${F("a", "U8", "[4]", "[0,4]")},${F("\\u0061", "U8", "[4]", "[0,4]")}}`, d)),
    [
      "tensor 'a' appears more than once in the header",
    ],
  );
  assert.deepEqual(
    problems(st(`{"a":{"dtype":"U8","dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, d)),
    ["tensor 'a': field 'dtype' appears more than once"],
  );
  assert.deepEqual(problems(st(`{"__metadata__":{"k":"1","k":"2"},${F("a", "U8", "[4]", "[0,4]")}}`, d)), [
    "'__metadata__' key 'k' appears more than once",
  ]);
  assert.deepEqual(problems(st(`{"__metadata__":{},"__metadata__":{},${F("a", "U8", "[4]", "[0,4]")}}`, d)), [
    "'__metadata__' appears more than once in the header",
  ]);
});

Deno.test("safetensors: __metadata__ is a map of strings", () => {
  const d = new Uint8Array(4);
  const a = F("a", "U8", "[4]", "[0,4]");
  assert.deepEqual(problems(st(`{"__metadata__":{"k":1,"k":"x"},${a}}`, d)), [
    "'__metadata__' key 'k' is the number 1, not a string",
    "'__metadata__' key 'k' appears more than once",
  ]);
  assert.deepEqual(problems(st(`{"__metadata__":{"k":1},${a}}`, d)), [
    "'__metadata__' key 'k' is the number 1, not a string",
  ]);
  assert.deepEqual(problems(st(`{"__metadata__":null,${a}}`, d)), [
    "'__metadata__' is null, not an object of strings",
  ]);
  assert.deepEqual(problems(st(`{"__metadata__":{"k":{"x":"y"}},${a}}`, d)), [
    "'__metadata__' key 'k' is an object, not a string",
  ]);
  const ok = safetensorsIndexOf(st(`{"__metadata__":{"__proto__":"x","format":"pt"},${a}}`, d), "m");
  assert.deepEqual([...ok.metadata], [["__proto__", "x"], ["format", "pt"]]);
});

const ODD = [
  "constructor",
  "__proto__",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "",
  "é名🔥",
  "a\nb",
  "q'\\\"",
];

Deno.test("safetensors: tensor names that are JavaScript object keys are names like any other", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_st_test_" });
  try {
    const tensors = ODD.map((name, k) => ({
      name,
      dtype: "float32" as const,
      dims: [2],
      bytes: new Uint8Array(new Float32Array([k, -k]).buffer),
    }));
    const path = `${dir}/odd.safetensors`;
    await writeSafetensors(
      path,
      tensors,
      { __proto__: "p", constructor: "c" } as unknown as Record<string, string>,
    );
    const index = await readSafetensorsIndex(path);
    assert.deepEqual([...index.entries.keys()], ODD);
    assert.equal(index.entries.get("__proto__")!.dims[0], 2);
    // a plain-object literal's __proto__ sets the prototype: only "constructor" is an own key
    assert.deepEqual([...index.metadata], [["constructor", "c"]]);
    const meta = JSON.parse('{"__proto__":"p","toString":"t"}');
    await writeSafetensors(path, tensors, meta);
    assert.deepEqual([...(await readSafetensorsIndex(path)).metadata], [["__proto__", "p"], [
      "toString",
      "t",
    ]]);
    // bound by name, through a weight set (core/weights/weight_set.ts)
    const sig: WeightSpec[] = ODD.map((name) => ({
      name,
      dtype: "float32",
      dims: [2],
      byteLength: 8,
      location: "",
      offset: 0,
      length: 0,
      checksum: "",
    }));
    const set = await WeightSet.fromSafetensors(sig, path);
    assert.deepEqual(set.names().sort(), [...ODD].sort());
    for (const [k, name] of ODD.entries()) {
      assert.deepEqual([...new Float32Array(set.tensors.get(name)!.bytes.slice().buffer)], [k, -k]);
    }
    const renamed = await WeightSet.fromSafetensors(sig.map((s) => ({ ...s, name: `w.${s.name}` })), path, {
      nameMap: Object.fromEntries(ODD.map((n) => [n, `w.${n}`])),
    });
    assert.equal(renamed.tensors.get("w.constructor")!.dims[0], 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeSafetensors: writes only what a reader accepts, 8-byte aligned even with non-ASCII names", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_st_test_" });
  try {
    const path = `${dir}/w.safetensors`;
    const t = (name: string, dims = [3], bytes = new Uint8Array(3)) => ({
      name,
      dtype: "uint8" as const,
      dims,
      bytes,
    });
    for (const names of [["é"], ["名前", "x"], ["🔥🔥🔥"]]) {
      await writeSafetensors(path, names.map((n) => t(n)));
      const i = await readSafetensorsIndex(path);
      assert.equal(i.entries.get(names[0])!.offset % 8, 0, names.join());
    }
    const refused = async (tensors: ReturnType<typeof t>[], re: RegExp) => {
      const e = await writeSafetensors(path, tensors).then(() => undefined, (e) => e);
      assert.ok(e instanceof KilnError && e.message.includes(`'${path}'`), String(e));
      assert.match(e.message, re);
    };
    await refused([t("a"), t("a")], /tensor 'a' is given more than once/);
    await refused([t("__metadata__")], /the name is reserved/);
    await refused([t("\ud800")], /not well-formed Unicode/);
    await refused([t("a", [4])], /3 bytes, its shape \[4\] of uint8 needs 4/);
    await refused([t("a", [-3])], /dims \[-3\] are not non-negative integers/);
    await refused([t("a", [1.5, 2])], /dims \[1\.5,2\] are not non-negative integers/);
    await refused([t("a"), t("a", [4]), t("b", [-1])], /3 problems/);
    await writeSafetensors(path, []);
    assert.equal((await readSafetensorsIndex(path)).entries.size, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readSafetensorsIndex: a file that is missing, a directory or a FIFO fails naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kiln_st_test_" });
  try {
    await assert.rejects(
      readSafetensorsIndex(`${dir}/none.safetensors`),
      (e: unknown) =>
        e instanceof KilnError && e.code === "io" && /none\.safetensors' does not exist/.test(e.message),
    );
    await assert.rejects(readSafetensorsIndex(dir), /is a directory, not a regular file/);
    const fifo = `${dir}/p.safetensors`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output().then(
      (r) => r.success,
      () => false,
    );
    if (made) {
      await assert.rejects(readSafetensorsIndex(fifo), /p\.safetensors' is a FIFO, not a regular file/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
