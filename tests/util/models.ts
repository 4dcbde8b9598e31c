/**
 * Where the shared exporter graphs live: `../shared/models` beside the repository (as in CI's
 * clean clone), read-only. Tests skip with a printed reason when it is absent.
 * @module
 */
export const SHARED_MODELS: string = new URL("../../../shared/models", import.meta.url).pathname;

/** True when `name` (e.g. "gpt2_dynamo.onnx") is present in the shared models folder. */
export function hasSharedModel(name: string): boolean {
  try {
    return Deno.statSync(`${SHARED_MODELS}/${name}`).isFile;
  } catch {
    return false;
  }
}
