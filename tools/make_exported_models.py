"""Exports the small exporter-made test models kiln keeps in tests/fixtures/exported/.

Run where PyTorch, transformers, onnx and onnxruntime (Python) are installed (the GPU machine has
them; this machine does not), then copy the folder into the repository:

    python3 tools/make_exported_models.py --out tests/fixtures/exported

It writes, each in its own folder with its weights as ONNX external data (model.onnx + model.onnx.data):
  bert_int8/   a 2-layer BERT (hidden 64, vocab 256) exported by torch.onnx, then quantized by
               onnxruntime.quantization.quantize_dynamic (int8 weights: DynamicQuantizeLinear +
               MatMulInteger, as transformers.js ships its models)
  lstm/        a 2-layer bidirectional LSTM over a float sequence with a Linear head, exported by
               torch.onnx (the exporter's LSTM node, its weight layout and gate order)
and MANIFEST.json (versions, inputs). Seeded: the same versions give the same files.
"""
import argparse
import json
import os
import tempfile

import numpy as np
import onnx
import torch


def save_external(model_path: str, out_dir: str) -> None:
    m = onnx.load(model_path)
    os.makedirs(out_dir, exist_ok=True)
    onnx.save_model(m, os.path.join(out_dir, "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)


def bert_int8(out: str, tmp: str) -> dict:
    from transformers import BertConfig, BertModel
    from onnxruntime.quantization import QuantType, quantize_dynamic
    torch.manual_seed(11)
    cfg = BertConfig(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=64)
    bert = BertModel(cfg).eval()

    class Wrapped(torch.nn.Module):  # token ids in, the last hidden state out
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, ids):
            return self.bert(input_ids=ids).last_hidden_state

    model = Wrapped().eval()
    ids = torch.randint(0, 256, (1, 16))
    fp32 = os.path.join(tmp, "bert_fp32.onnx")
    torch.onnx.export(model, (ids,), fp32, input_names=["ids"], output_names=["last_hidden_state"],
                      opset_version=17, dynamo=False)
    q = os.path.join(tmp, "bert_int8.onnx")
    quantize_dynamic(fp32, q, weight_type=QuantType.QInt8)
    save_external(q, os.path.join(out, "bert_int8"))
    ops = sorted({n.op_type for n in onnx.load(q, load_external_data=False).graph.node})
    return {"input": {"ids": [1, 16], "dtype": "int64", "vocab": 256}, "ops": ops}


def lstm(out: str, tmp: str) -> dict:
    torch.manual_seed(12)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
            self.head = torch.nn.Linear(32, 4)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.head(y[:, -1])

    net = Net().eval()
    x = torch.randn(2, 10, 8)
    path = os.path.join(tmp, "lstm.onnx")
    torch.onnx.export(net, (x,), path, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    save_external(path, os.path.join(out, "lstm"))
    ops = sorted({n.op_type for n in onnx.load(path, load_external_data=False).graph.node})
    return {"input": {"x": [2, 10, 8], "dtype": "float32"}, "ops": ops}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    import onnxruntime
    os.makedirs(a.out, exist_ok=True)
    manifest = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        manifest["models"]["bert_int8"] = bert_int8(a.out, tmp)
        manifest["models"]["lstm"] = lstm(a.out, tmp)
    with open(os.path.join(a.out, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
