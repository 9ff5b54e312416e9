"""Loads sparc's PEFT export with Hugging Face `peft` (GPU machine, which has
transformers and peft): builds a small random llama, trains sparc+lora on it
with sparc (byte tokenizer), exports a task and checks that PeftModel loads
both adapters with the exported values and runs a forward pass.
Usage: peft_load.py SPARC_BINARY WORK_DIR"""
import json
import os
import subprocess
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

sparc, work = sys.argv[1], sys.argv[2]
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
    logits = model(input_ids=ids).logits
    assert torch.isfinite(logits).all()
    print(kind, "adapter loaded by peft:", len(saved), "tensors, logits", tuple(logits.shape))
print(json.dumps({"peft_load": "ok"}))
