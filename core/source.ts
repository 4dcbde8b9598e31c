/**
 * Byte sources beside file paths: what a browser, an edge runtime or a server that fetched a
 * model has in hand. A `Response` (checked: a failed HTTP status is an error naming the URL), a
 * `Blob` (a `File` from an input element), an `http:`/`https:` URL (fetched), or bytes.
 * @module
 */
import { KilnError } from "./errors.ts";

/** Bytes, a Blob, a fetch Response, or an http(s) URL: a source that is not a file path. */
export type ByteSource = Uint8Array | Blob | Response | URL;

/** True for sources `readByteSource` reads (file paths and `file:` URLs are not among them). */
export function isByteSource(s: unknown): s is ByteSource {
  if (s instanceof Uint8Array) return true;
  if (typeof Blob !== "undefined" && s instanceof Blob) return true;
  if (typeof Response !== "undefined" && s instanceof Response) return true;
  return s instanceof URL && (s.protocol === "http:" || s.protocol === "https:");
}

/** A name for the source in messages: its URL, or what it is. */
export function byteSourceName(s: ByteSource): string {
  if (s instanceof URL) return s.href;
  if (s instanceof Uint8Array) return "<bytes>";
  if (typeof Response !== "undefined" && s instanceof Response) return s.url || "<response>";
  const name = (s as Blob & { name?: string }).name;
  return name ? name : "<blob>";
}

/** The bytes of `s` (`what` heads errors: "ONNX model", "Safetensors file"). */
export async function readByteSource(s: ByteSource, what: string): Promise<Uint8Array<ArrayBuffer>> {
  if (s instanceof Uint8Array) return s as Uint8Array<ArrayBuffer>;
  const name = byteSourceName(s);
  let r: Response | Blob = s as Response | Blob;
  if (s instanceof URL) {
    try {
      r = await fetch(s);
    } catch (e) {
      throw new KilnError("io", `Cannot fetch ${what.toLowerCase()} '${name}': ${(e as Error).message}`);
    }
  }
  if (typeof Response !== "undefined" && r instanceof Response && !r.ok) {
    throw new KilnError(
      "io",
      `Cannot fetch ${what.toLowerCase()} '${name}': HTTP ${r.status} ${r.statusText}`.trim(),
    );
  }
  try {
    return new Uint8Array(await r.arrayBuffer());
  } catch (e) {
    throw new KilnError("io", `Cannot read ${what.toLowerCase()} '${name}': ${(e as Error).message}`);
  }
}
