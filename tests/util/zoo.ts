/**
 * A zoo of small, realistic models in the patterns PyTorch's exporters emit (torch.onnx and the
 * dynamo exporter), each with its weights in ONNX external data: the model type and every
 * builder, in the order the tests run them. The builders live by family in zoo_cnn.ts,
 * zoo_transformers.ts and zoo_control_flow.ts.
 * @module
 */
import type { Tensor } from "../../core/tensor.ts";
import type { Written } from "./graph_dsl.ts";
import { convnext, diffusion, mobilenet, resnet, unet } from "./zoo_cnn.ts";
import { ifModel } from "./zoo_control_flow.ts";
import { lstmClassifier } from "./zoo_rnn.ts";
import { einsum, encoder, gpt, llama, t5, vit } from "./zoo_transformers.ts";

export interface ZooCase {
  dims: Record<string, number[]>;
  inputs: Record<string, Tensor>;
}
export interface ZooModel {
  name: string;
  file: Written;
  cases: ZooCase[];
}

export const ZOO_BUILDERS = [
  mobilenet,
  resnet,
  unet,
  encoder,
  gpt,
  einsum,
  ifModel,
  vit,
  convnext,
  t5,
  llama,
  diffusion,
];

/**
 * Zoo models with ops the gpu target runs on the host (no device kernel): checked on ref with the
 * others (models_test.ts), left out of gpu_models_test.ts, which wants every node on the device.
 */
export const ZOO_HOST_OP_BUILDERS = [lstmClassifier];
