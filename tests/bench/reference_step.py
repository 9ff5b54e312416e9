#!/usr/bin/python3
"""PyTorch reference of `sparc bench step` for method sparc (docs/benchmarks.md).

Two peers: --style hf (the default, below) and --style lean, the same model
with RMSNorm and softmax kept in the model dtype (bf16 stays bf16).

The same training step written the usual PyTorch way, as a Hugging Face-style
llama of the 1.13 era: frozen nn.Linear weights (requires_grad False) in the
model dtype, RMSNorm and softmax in f32, RoPE on the two halves of each head,
an additive causal mask over the whole score matrix, SwiGLU. The soft prompt
is Z [P, k] W [k, D] + mu with Z the only trainable tensor (f32, AdamW,
gradient clipping at 1.0 as sparc's default), concatenated before the token
embeddings; the loss is cross-entropy over C class logits at the last
position. Weights are random: the work does not depend on their values.

Run with Debian's /usr/bin/python3 (python3-torch: LibTorch 1.13 with
OpenBLAS and oneDNN, the library sparc links). Prints one JSON line.
"""
import argparse
import json
import math
import os
import sys
import time

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--dim", type=int, default=512)
p.add_argument("--layers", type=int, default=8)
p.add_argument("--heads", type=int, default=8)
p.add_argument("--ffn", type=int, default=1376)
p.add_argument("--vocab", type=int, default=512)
p.add_argument("--seq", type=int, default=256, help="tokens per example, prompt excluded")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--prompt", type=int, default=20, help="P: prompt length")
p.add_argument("--k", type=int, default=100, help="subspace dimension")
p.add_argument("--classes", type=int, default=2)
p.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
p.add_argument("--style", choices=["hf", "lean"], default="hf",
               help="hf: RMSNorm and softmax in f32, as Hugging Face's llama; lean: both kept "
                    "in the model dtype, as a performance-minded user would write them")
p.add_argument("--steps", type=int, default=5, help="timed steps, after one warm-up step")
p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
args = p.parse_args()
# Threads: OpenBLAS reads its count at load time; LibTorch's pool is set below.
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
D, H, L, FF = args.dim, args.heads, args.layers, args.ffn
hd = D // H
eps = 1e-5


def frozen_linear(n_in, n_out):
    lin = torch.nn.Linear(n_in, n_out, bias=False)
    torch.nn.init.normal_(lin.weight, std=0.02)
    lin.weight.requires_grad_(False)
    return lin.to(dtype)


class RMSNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(D, dtype=dtype), requires_grad=False)

    def forward(self, x):
        if args.style == "lean":
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return y.to(x.dtype) * self.weight


def rotate(x, cos, sin):
    x1, x2 = x.chunk(2, -1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm, self.mlp_norm = RMSNorm(), RMSNorm()
        self.q, self.k, self.v, self.o = (frozen_linear(D, D) for _ in range(4))
        self.gate, self.up, self.down = frozen_linear(D, FF), frozen_linear(D, FF), frozen_linear(FF, D)

    def forward(self, x, cos, sin, mask):
        B, S, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(B, S, H, hd).transpose(1, 2)
        k = self.k(h).view(B, S, H, hd).transpose(1, 2)
        v = self.v(h).view(B, S, H, hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(hd) + mask
        probs = torch.softmax(scores, -1) if args.style == "lean" else torch.softmax(scores.float(), -1).to(dtype)
        attn = torch.matmul(probs, v).transpose(1, 2).reshape(B, S, D)
        x = x + self.o(attn)
        m = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(m)) * self.up(m))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(args.vocab, D)
        torch.nn.init.normal_(self.embed.weight, std=0.02)
        self.embed.weight.requires_grad_(False)
        self.embed.to(dtype)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm()

    def forward(self, tokens, prefix, label_ids):
        B, T = tokens.shape
        x = torch.cat([prefix.to(dtype).unsqueeze(0).expand(B, -1, -1), self.embed(tokens)], 1)
        S = x.shape[1]
        pos = torch.arange(S, dtype=torch.float32)
        inv_freq = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        angles = pos[:, None] * inv_freq[None, :]
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
        mask = torch.full((S, S), float("-inf"), dtype=dtype).triu(1)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        h_last = self.norm(x)[:, -1]  # [B, D]
        w = self.embed.weight.index_select(0, label_ids)  # [C, D]
        return torch.matmul(h_last, w.t()).float()


model = Model()
basis = torch.linalg.qr(torch.randn(D, args.k, dtype=torch.float64))[0].t().contiguous()  # [k, D]
mu = torch.randn(D, dtype=torch.float64) * 0.02
z = torch.nn.Parameter(torch.randn(args.prompt, args.k) * 0.02)  # f32, the only trainable tensor
opt = torch.optim.AdamW([z], lr=0.3, weight_decay=0.0)
label_ids = torch.arange(args.classes) + 48
gen = torch.Generator().manual_seed(1)


def step():
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq), generator=gen)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen)
    opt.zero_grad()
    prefix = torch.addmm(mu.float(), z, basis.float())  # Z W + mu in Z's dtype
    scores = model(tokens, prefix, label_ids)
    loss = F.cross_entropy(scores, y, reduction="sum") / args.batch
    loss.backward()
    torch.nn.utils.clip_grad_norm_([z], 1.0)
    opt.step()
    return loss.item()


step()  # warm-up, not timed
start = time.perf_counter()
for _ in range(args.steps):
    step()
elapsed = time.perf_counter() - start
tokens = args.batch * (args.seq + args.prompt) * args.steps
print(json.dumps({"impl": "pytorch" if args.style == "hf" else "pytorch-lean", "tokens_per_s": tokens / elapsed,
                  "ms_per_step": 1000 * elapsed / args.steps, "dtype": args.dtype,
                  "threads": torch.get_num_threads(), "d_model": D, "n_layers": L,
                  "batch": args.batch, "seq_len": args.seq, "prompt_len": args.prompt,
                  "pca_k": args.k, "steps": args.steps, "torch": torch.__version__}))
