/**
 * The importer's errors: `KilnError`s with code "onnx" (a bad or unsupported model), "input"
 * (options that do not fit the model) or "io" (a model or external-data file that cannot be read).
 * @module
 */
import { KilnError, type KilnErrorCode, type KilnErrorContext } from "../errors.ts";

/** Makes an import error (to be thrown by the caller). */
export function importError(
  message: string,
  ctx: KilnErrorContext = {},
  code: KilnErrorCode = "onnx",
): KilnError {
  return new KilnError(code, message, ctx);
}

/** An error in the options given to the importer (code "input"). */
export function inputError(message: string): KilnError {
  return new KilnError("input", message);
}
