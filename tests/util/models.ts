/**
 * Where the shared exporter graphs live: `../shared/models` beside the repository (as in CI's
 * clean clone), read-only, or the folder `KILN_SHARED_MODELS` names (the GPU machine gets a copy
 * carried with the tree). Tests skip with a printed reason when it is absent.
 * @module
 */
function _fromEnv(): string | undefined {
  try {
    return Deno.env.get("KILN_SHARED_MODELS") || undefined;
  } catch {
    return undefined;
  }
}

export const SHARED_MODELS: string = _fromEnv() ??
  new URL("../../../shared/models", import.meta.url).pathname;

/** True when `name` (e.g. "gpt2_dynamo.onnx") is present in the shared models folder. */
export function hasSharedModel(name: string): boolean {
  try {
    return Deno.statSync(`${SHARED_MODELS}/${name}`).isFile;
  } catch {
    return false;
  }
}
