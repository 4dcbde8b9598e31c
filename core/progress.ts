/**
 * Progress on stderr for long work: nothing for steps that finish within a second, then at
 * most one line a second (`kiln: reading weights 45% (220.0 MB of 497.3 MB)`).
 * @module
 */

/** A progress reporter for one command. */
export class Progress {
  #start = performance.now();
  #last = 0;
  #write: (line: string) => void;

  constructor(write: (line: string) => void = (l) => console.error(l)) {
    this.#write = write;
  }

  /** A callback for byte counts (`onProgress` options), labelled `what`. */
  bytes(what: string): (done: number, total: number) => void {
    return (done, total) => {
      const now = performance.now();
      if (now - this.#start < 1000 || (now - this.#last < 1000 && done < total)) return;
      this.#last = now;
      const pct = total ? Math.floor((100 * done) / total) : 100;
      this.#write(`kiln: ${what} ${pct}% (${(done / 1e6).toFixed(1)} MB of ${(total / 1e6).toFixed(1)} MB)`);
    };
  }

  /** Announces a step once the command has run for more than a second. */
  step(what: string): void {
    if (performance.now() - this.#start >= 1000) this.#write(`kiln: ${what}...`);
  }
}
