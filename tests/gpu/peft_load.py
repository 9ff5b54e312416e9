"""Loads sparc's PEFT export with Hugging Face `peft` (GPU machine, which has
transformers and peft): builds a small random llama, trains sparc+lora on it
with sparc (byte tokenizer), exports a task and checks that PeftModel loads
both adapters with the exported values, and that its logits equal sparc's
for the same adapter (tests/gpu/adapter_logits, f32 on the CPU).
Usage: peft_load.py SPARC_BINARY ADAPTER_LOGITS_BINARY WORK_DIR"""
import json
import os
import subprocess
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

sparc, adapter_logits, work = sys.argv[1], sys.argv[2], sys.argv[3]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
base_dir = os.path.join(work, "base")
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=False)
LlamaForCausalLM(cfg).save_pretrained(base_dir, safe_serialization=True)

run_dir = os.path.join(work, "run")
subprocess.run([sparc, "--log-level", "warn", "train",
                "--config", os.path.join(root, "configs/tiny-task-incremental.yaml"),
                "--run-dir", run_dir, "--set", "model.path=" + base_dir, "--set", "model.tokenizer=bytes",
                "--set", "method=sparc+lora", "--set", "train.epochs=1",
                "--set", "train.max_train_examples=32", "--set", "eval.max_examples=20"], check=True)
out = os.path.join(work, "peft")
subprocess.run([sparc, "export-peft", "--checkpoint", os.path.join(run_dir, "checkpoints"),
                "--task", "mood", "--out", out], check=True)

ids = torch.tensor([[1, 70, 80, 90]])
report = {}
for kind in ["prompt", "lora"]:
    base = LlamaForCausalLM.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(base, os.path.join(out, kind))
    saved = load_file(os.path.join(out, kind, "adapter_model.safetensors"))
    state = model.state_dict()
    if kind == "prompt":
        loaded = model.prompt_encoder["default"].embedding.weight
        assert torch.equal(loaded.detach().cpu(), saved["prompt_embeddings"]), "prompt differs"
    else:
        for name, value in saved.items():
            key = name.replace(".weight", ".default.weight")
            assert key in state, f"{key} not in the PEFT model"
            assert torch.equal(state[key].cpu(), value), f"{key} differs"
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    assert torch.isfinite(logits).all()
    sparc_out = json.loads(subprocess.run([adapter_logits, base_dir, os.path.join(out, kind), "cpu", "f32"]
                                     + [str(i) for i in ids[0].tolist()], check=True,
                                     capture_output=True, text=True).stdout)
    sparc_logits = torch.tensor(sparc_out["logits"]).view(sparc_out["shape"])
    assert tuple(sparc_logits.shape) == tuple(logits.shape), f"{kind}: shapes {sparc_logits.shape} vs {logits.shape}"
    diff = (sparc_logits - logits).abs().max().item()
    scale = logits.abs().max().item()
    report[kind] = {"tensors": len(saved), "shape": list(logits.shape), "max_abs_diff": diff,
                    "scale": scale}
    print(kind, "adapter loaded by peft:", report[kind])
    assert diff <= 1e-4 * scale, f"{kind}: peft and sparc logits differ by {diff} (scale {scale})"
print(json.dumps({"peft_load": "ok", **report}))
