// A pass: a name and an `apply` over one module (the manager runs it over every module).
import { Module, Program } from "../ir/program";

export abstract class Pass {
  name: string;
  constructor(name: string) {
    this.name = name;
  }
  /** Rewrites module `m` of `prog`; false (with diagnostics) on failure. */
  abstract apply(prog: Program, m: Module): bool;
}
