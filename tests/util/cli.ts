/** Running kiln's command line from tests, as a user would. @module */

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** What a CLI run printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run --allow-read --allow-write cli.ts ...args`. */
export function runCli(...args: string[]): Promise<CliResult> {
  return runCliWith(["--allow-read", "--allow-write"], ...args);
}

/** Runs `deno run <permission flags> cli.ts ...args`. */
export async function runCliWith(flags: string[], ...args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
