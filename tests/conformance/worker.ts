// Runs conformance cases off the main thread, so the runner can stop a case that hangs
// (terminate the worker, record a timeout, go on in a fresh worker). Messages: in
// { jobs: IsolatedJob[], backend: string }; out one CaseResult per job, then { done: true }.

import { backendNamed, type IsolatedJob, runCase } from "./run.ts";

const _ctx = self as unknown as {
  onmessage: ((ev: MessageEvent<{ jobs: IsolatedJob[]; backend: string }>) => void) | null;
  postMessage(message: unknown): void;
};

_ctx.onmessage = async (ev) => {
  const { jobs, backend } = ev.data;
  const b = await backendNamed(backend);
  for (const j of jobs) _ctx.postMessage(await runCase(j.dir, j.name, j.op, j.info, b));
  _ctx.postMessage({ done: true });
};
