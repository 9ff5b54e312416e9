#!/usr/bin/env python3
"""How much can a soft prompt get out of a frozen llama on one task?

An experiment independent of the sparc binary (its own PyTorch forward pass,
from tests/reference/hf_reference.py), used for docs/demo.md. For one task of
`sparc prepare-data` and one template/verbalizer it prints:

  zero-shot     accuracy of the verbalizer's first tokens at the answer position
  calibrated    the same with the threshold moved to the training split's median
                score difference (what a prompt that only learns the bias reaches)
  linear probe  logistic regression on the final hidden state at the answer
                position (train split -> test split): what a linear read-out of
                the frozen model's last position holds
  bag of words  the same on the mean input embedding of the text's tokens
  free prompt   P free prompt vectors (P x D, more than sparc's P x k) prepended
                to the input embeddings and trained with AdamW on the classes'
                cross-entropy; train and test accuracy every 100 steps

  scripts/prompt_capacity.py --model models/demo-base --data data \
      --task sentiment/yelp --template "{text} It was" --labels 0=bad,1=good

Needs Debian's python3-torch and spm_encode (package sentencepiece); the model
must be a llama Hugging Face directory with a SentencePiece tokenizer.model.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import hf_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="the output directory of sparc prepare-data")
    ap.add_argument("--task", required=True, help="e.g. sentiment/yelp, brown-genre, wordnet-hypernym")
    ap.add_argument("--template", required=True)
    ap.add_argument("--labels", required=True, help="value=word,value=word (two classes)")
    ap.add_argument("--max-train", type=int, default=600)
    ap.add_argument("--max-test", type=int, default=400)
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--prompt-length", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.03)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)

    cfg = json.load(open(os.path.join(a.model, "config.json")))
    w = {n: t.float() for n, t in ref.read_safetensors(os.path.join(a.model, "model.safetensors")).items()}
    spm = os.path.join(a.model, "tokenizer.model")

    def encode(texts):
        out = subprocess.run(["spm_encode", "--model", spm, "--output_format", "id"],
                             input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
        return [[cfg.get("bos_token_id", 1)] + [int(v) for v in line.split()] for line in out.stdout.splitlines()]

    pairs = [p.split("=", 1) for p in a.labels.split(",")]
    if len(pairs) != 2:
        sys.exit("--labels: expected two value=word pairs")
    values = [v for v, _ in pairs]
    word_ids = [encode([word])[0][1] for _, word in pairs]  # first token, as SPEC 6 scores it

    def load(split, n):
        rows = [json.loads(line) for line in open(os.path.join(a.data, a.task, split + ".jsonl"))][:n]
        for r in rows:
            if "\n" in r["text"]:
                r["text"] = r["text"].replace("\n", " ")
        ids = [i[:a.max_length] for i in encode([a.template.format(**r) for r in rows])]
        y = torch.tensor([values.index(str(r["label"]).lower()) for r in rows])
        return ids, y

    train_ids, train_y = load("train", a.max_train)
    test_ids, test_y = load("test", a.max_test)
    E = w["model.embed_tokens.weight"]

    def final_hidden(ids, prefix):
        """Normed final hidden state at each example's last token, after `prefix` soft tokens."""
        B, T, P = len(ids), max(len(i) for i in ids), prefix.shape[0]
        tokens = torch.tensor([i + [0] * (T - len(i)) for i in ids])  # right padding: causal, never seen
        x = torch.cat([prefix.unsqueeze(0).expand(B, -1, -1), E[tokens]], 1)
        last = torch.tensor([len(i) - 1 + P for i in ids])
        return ref.llama_final_hidden(cfg, w, x)[torch.arange(B), last]

    head = w.get("lm_head.weight", E)[word_ids]

    def batched(ids, prefix):
        return torch.cat([final_hidden(ids[i:i + 100], prefix) for i in range(0, len(ids), 100)])

    def accuracy(pred, y):
        return (pred == y).float().mean().item()

    empty = torch.zeros(0, E.shape[1])
    with torch.no_grad():
        h_train, h_test = batched(train_ids, empty), batched(test_ids, empty)
    d_train, d_test = h_train @ (head[1] - head[0]), h_test @ (head[1] - head[0])
    print(f"task {a.task}: {len(train_ids)} train, {len(test_ids)} test examples; "
          f"2 standard errors of the test set: {2 * math.sqrt(0.25 / len(test_ids)):.3f}")
    print(f"zero-shot     {accuracy((d_test > 0).long(), test_y):.3f}  "
          f"(score difference on train: mean {d_train.mean():+.2f}, std {d_train.std():.2f})")
    print(f"calibrated    {accuracy((d_test > d_train.median()).long(), test_y):.3f}")

    def probe(xtr, xte, lam=1e-2):
        mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
        xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
        wv = torch.zeros(xtr.shape[1] + 1, requires_grad=True)
        opt = torch.optim.LBFGS([wv], max_iter=500)

        def closure():
            opt.zero_grad()
            z = xtr @ wv[:-1] + wv[-1]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, train_y.float()) + lam * wv[:-1].pow(2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        return accuracy(((xte @ wv[:-1] + wv[-1]) > 0).long(), test_y)

    bow = [torch.stack([E[i[1:]].mean(0) for i in ids]) for ids in (train_ids, test_ids)]
    print(f"linear probe  {probe(h_train, h_test):.3f}  (final hidden state at the answer position)")
    print(f"bag of words  {probe(*bow):.3f}  (mean input embedding)")

    pool = [t for i in train_ids for t in i[1:]]
    prompt = E[[pool[j] for j in torch.randint(len(pool), (a.prompt_length,)).tolist()]].clone().requires_grad_(True)
    opt = torch.optim.AdamW([prompt], lr=a.lr, weight_decay=0.0)
    for step in range(1, a.steps + 1):
        idx = torch.randint(len(train_ids), (a.batch,)).tolist()
        logits = final_hidden([train_ids[i] for i in idx], prompt) @ head.T
        loss = torch.nn.functional.cross_entropy(logits, train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == a.steps:
            with torch.no_grad():
                tr = accuracy((batched(train_ids, prompt) @ head.T).argmax(1), train_y)
                te = accuracy((batched(test_ids, prompt) @ head.T).argmax(1), test_y)
            print(f"free prompt   step {step}: train {tr:.3f}  test {te:.3f}", flush=True)


if __name__ == "__main__":
    main()
