// LoRA adapters on the ref target (tests/util/adapter_suite.ts): applied from PEFT's layout,
// switched, removed bit for bit, re-applied over weights bound later, refused whole when bad.
import { adapterSuite } from "./util/adapter_suite.ts";

Deno.test("ref target: LoRA adapters over the kept base weights", (t) => adapterSuite(t, "ref"));
