// The frozen decoder-only transformer: one implementation, two families
// (llama, gpt2). Weights are plain tensors without gradients; autograd still
// flows through the activations, so soft prompts (prefix embeddings) and,
// later, LoRA adapters train against a frozen model.
//
// Extension points: every projection is a `Linear` (LoRA attaches there),
// and the forward runs block by block, so a layer-sharded model (SPEC 3)
// gathers a block's weights right before it runs.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "model/model_config.h"
#include "model/weight_source.h"

namespace sparc {

class Communicator;
class BlockShards;
class VocabTable;
struct ShardedBlockBackward;

struct ModelOptions {
  torch::Dtype dtype = torch::kFloat32;  // frozen weights and activations: f32 or bf16
  torch::Device device = torch::kCPU;
  // Layer sharding (SPEC 3): with a communicator of more than one rank, each
  // rank keeps 1/N of every block's weights, read as a slice from the source,
  // and all-gathers a block's weights right before it runs (forward, and
  // again in backward); the next block's gather is issued while the current
  // one computes. Every rank must then run the same sequence of passes
  // (see idle_pass). The token embedding and the output layer are sharded
  // too, by slices of vocabulary rows (model/vocab_shards.h): a lookup or
  // the output layer is a pass over every slice, so they run in lockstep as
  // well. Final norm and positions stay whole.
  Communicator* shard_comm = nullptr;
  // Rows per vocabulary slice: the unit of work over the vocabulary, whole
  // or sharded (never derived from the world size, so results are not).
  std::int64_t vocab_slice_rows = 4096;
  // prefixed_hidden_at: run the last block's queries, output projection and
  // MLP at the requested positions only (about 10% less work in the
  // benchmark configuration), one sequence at a time, sharded or not (a
  // sharded one recomputes the same pruned products in backward). Off by
  // default: its products have one row per sequence, so BLAS's rounding
  // differs from the whole block's; a run must prune on every rank alike.
  bool prune_last_block = false;
  // Which blocks re-run their forward in backward (`model.recompute`):
  // kAuto keeps blocks, first to last, while their estimated kept bytes
  // (activations, plus the gathered weights autograd then holds when
  // sharded) fit activation_budget_bytes per forward pass; a budget of 0
  // keeps every block unsharded and none sharded. Gradients are the same
  // bits in every mode (the recomputed forward is the kept one).
  enum class Recompute { kAuto, kAlways, kNever };
  Recompute recompute = Recompute::kAuto;
  std::int64_t activation_budget_bytes = 0;
};

// "auto" | "always" | "never"; throws InputError(where, ...) otherwise.
ModelOptions::Recompute parse_recompute(const std::string& name, const std::string& where);

// Parses "f32"/"bf16" (and "f16"); "cpu"/"cuda"/"cuda:N". Throw InputError(where, ...).
torch::Dtype parse_model_dtype(const std::string& name, const std::string& where);
torch::Device parse_model_device(const std::string& name, const std::string& where);

// Dropout draws of one forward pass: keyed by (base, module, global sample
// index), so a sample's mask does not depend on which rank holds it.
struct DropoutKeys {
  std::uint64_t base = 0;
  std::vector<std::int64_t> sample_ids;  // global index of each batch row
};

// A low-rank adapter on one projection: y += scale * dropout(x) A^T B^T.
// A and B are float32 (trainable state stays f32 whatever the model dtype).
struct LoraAdapter {
  torch::Tensor a;  // [r, in]
  torch::Tensor b;  // [out, r]
  double scale = 1.0;
  double dropout = 0.0;
};

struct Linear {
  torch::Tensor weight;  // [out, in]; undefined between uses in a sharded model
  std::int64_t in_features = 0, out_features = 0;
  torch::Tensor bias;    // [out] or undefined
  std::shared_ptr<LoraAdapter> lora;  // optional; owned by a task
  std::uint64_t module_id = 0;        // stable id: keys this module's dropout draws
  // bf16/f16 frozen weights: W^T kept contiguous (see Linear::forward), and
  // which weight tensor and version it was made from.
  mutable torch::Tensor weight_t;
  mutable const void* weight_t_of = nullptr;
  mutable std::int64_t weight_t_version = -1;
  torch::Tensor forward(const torch::Tensor& x, const DropoutKeys* dropout = nullptr) const;
};

struct Norm {
  torch::Tensor weight;
  torch::Tensor bias;  // gpt2's LayerNorm only
};

struct Block {
  Norm attn_norm, mlp_norm;
  Norm q_norm, k_norm;   // qk_norm only; held whole on every rank when sharded
  Norm post_attn_norm, post_mlp_norm;  // gemma only; likewise held whole
  bool sliding = false;  // attends within the config's sliding window
  Linear q, k, v, o;
  Linear gate, up, down;  // gate: llama only
};

class Transformer {
 public:
  // Loads and checks every tensor of `source` (names and shapes against the
  // config; errors name the source, the tensor and both shapes), converting
  // to options.dtype on options.device.
  Transformer(const WeightSource& source, const ModelOptions& options);

  const ModelConfig& config() const { return config_; }
  torch::Dtype dtype() const { return options_.dtype; }
  torch::Device device() const { return options_.device; }

  // Token ids [B, T] (int64) -> input embeddings [B, T, D] in the model dtype.
  // Sharded: an exchange of ids and rows that every rank makes
  // (model/vocab_shards.h).
  torch::Tensor embed(const torch::Tensor& tokens) const;
  // Rows `ids` [n] of the output layer -> [n, D] (class scores); sharded,
  // the same exchange.
  torch::Tensor output_rows(const torch::Tensor& ids) const;

  // Runs the blocks and the final norm over input embeddings [B, S, D].
  // `valid` [B, S] (bool) marks real positions; padded ones are never
  // attended to and do not advance positions, so left or right padding gives
  // the same outputs at real positions as the unpadded sequence. Undefined
  // `valid` means every position is real.
  torch::Tensor hidden_states(const torch::Tensor& embeddings, const torch::Tensor& valid) const;
  // The residual stream after `layers` blocks (0 = the input embeddings),
  // without the final norm: features for `pca.source: hidden:<layer>`.
  torch::Tensor hidden_after(const torch::Tensor& embeddings, const torch::Tensor& valid,
                             std::int64_t layers) const;

  // Hidden states [..., D] -> logits [..., V] in float32 (float64 for a
  // float64 model), computed slice by slice of the vocabulary (sharded:
  // each slice gathered).
  torch::Tensor logits(const torch::Tensor& hidden) const;
  // log p(target) [T] (f64) of each row of hidden [T, D] under the softmax
  // over the whole vocabulary, without [T, V] logits: each slice's (max,
  // sum of exp) folded in slice order, the same way whole or sharded.
  torch::Tensor token_log_likelihoods(const torch::Tensor& hidden, const torch::Tensor& targets) const;
  // Output-layer products (hidden times rows of output_embedding()) as
  // logits: with the config's final soft-capping (Gemma 2) when it has one.
  torch::Tensor cap_logits(const torch::Tensor& products) const;

  // Tokens [B, T] with an optional prefix of soft-prompt embeddings ([P, D]
  // shared by the batch, or [B, P, D]) placed before the tokens, and an
  // optional attention mask [B, T] (nonzero = real token). Returns logits
  // [B, P + T, V] (float32).
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& prefix = {},
                        const torch::Tensor& attention_mask = {}) const;
  // The same, stopping before the output layer: hidden states [B, P + T, D]
  // (for scoring a few tokens without computing every logit).
  torch::Tensor prefixed_hidden_states(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                       const torch::Tensor& attention_mask) const;
  // The same at one position per sequence: `positions` [B] (int64, prompt
  // included) -> hidden states [B, D]. The last block computes only what
  // those positions need (its keys and values everywhere, the rest at one).
  torch::Tensor prefixed_hidden_at(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                   const torch::Tensor& attention_mask,
                                   const torch::Tensor& positions) const;

  // The output embedding [V, D] (the token embedding when tied). Both are
  // undefined when sharded: use embed and output_rows.
  const torch::Tensor& output_embedding() const { return lm_head_; }
  const torch::Tensor& token_embedding() const { return tok_embeddings_; }

  // LoRA dropout keys for the next forward passes; nullptr (the default)
  // disables dropout, as in evaluation.
  void set_dropout(const DropoutKeys* keys) { dropout_ = keys; }

  // Makes every weight a trainable leaf (the `full` baseline) or frozen again.
  void set_weights_trainable(bool trainable);

  // Layer sharding: whether blocks are sharded, and the bytes of block
  // weights this rank keeps.
  bool sharded() const { return shards_ != nullptr; }
  std::int64_t resident_block_bytes() const;
  // Bytes of the token embedding and the output layer (once when tied) this
  // rank keeps, and has sent in their lookups and gathers so far (tag `gather`).
  std::int64_t resident_vocab_bytes() const;
  std::int64_t vocab_bytes_sent() const;
  // Sharded gathers served from the two reused buffers and from fresh
  // ones ({0, 0} unsharded): tests and benchmarks.
  std::pair<std::int64_t, std::int64_t> gather_buffer_uses() const;
  // Seconds this rank has waited for gathered block weights (0 unsharded).
  double gather_wait_seconds() const;
  // What a pass does with the output layer: nothing, rows of it
  // (output_rows: class scores) or every slice (logits, token_log_likelihoods).
  enum class OutputUse { kNone, kRows, kLogits };
  // The collectives of a pass, without computing anything: the embedding
  // lookup, the first `layers` blocks forward, the output layer's, then the
  // blocks backward when `backward`. A rank that has no examples for a pass
  // its peers run keeps step with them. No-op when not sharded.
  void idle_pass(std::int64_t layers, bool backward, OutputUse output) const;

  // Blocks as configured (LoRA attaches here); a sharded model's block
  // weights are undefined outside a pass.
  std::vector<Block>& blocks() { return blocks_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  // Every frozen tensor held whole on this rank by canonical name (tied
  // embeddings appear once; a sharded model's blocks, embedding and output
  // layer do not).
  std::vector<std::pair<std::string, torch::Tensor>> named_weights() const;
  std::int64_t parameter_count() const;

 private:
  friend struct ShardedBlockBackward;
  // Positions, RoPE tables and the attention mask for a batch.
  struct Geometry {
    // RoPE factors over whole heads [B, 1, S, hd]: cos2 = (cos, cos), sin2 =
    // (-sin, sin); q_cos/q_sin also carry the attention scale (1/sqrt(hd) or
    // the config's query_scale).
    torch::Tensor cos, sin, q_cos, q_sin;
    torch::Tensor allowed, blocked;  // blocked = !allowed
    torch::Tensor blocked_local;     // blocked, or outside the sliding window
    torch::Tensor cos_local, sin_local, q_cos_local, q_sin_local;  // sliding layers' RoPE (Gemma 3)
  };
  // `rows` [B] (int64): compute the block's output at one position per
  // sequence only ([B, 1, D]); undefined: everywhere.
  torch::Tensor run_block(const Block& block, const torch::Tensor& x, const Geometry& g,
                          const DropoutKeys* dropout, const torch::Tensor& rows = {}) const;
  // Embeddings of tokens after the prefix; `valid` gets the mask (with the prefix).
  torch::Tensor prefixed_inputs(const torch::Tensor& tokens, const torch::Tensor& prefix,
                                const torch::Tensor& attention_mask, torch::Tensor& valid) const;
  // Block `l` of a pass whose next block is `next` (-1: none): unsharded, a
  // plain run; sharded, gathered weights, under a recomputing autograd node
  // when gradients flow.
  torch::Tensor call_block(std::int64_t l, std::int64_t next, const torch::Tensor& x,
                           const Geometry& g) const;
  // Makes `y` (block `l`'s output on `x`, computed without a graph) the
  // output of a node that recomputes the block in backward (per sequence at
  // `rows` when defined) and joins the backward gathers.
  torch::Tensor recomputing_node(std::int64_t l, const Geometry& g, const torch::Tensor& x,
                                 const std::vector<torch::Tensor>& params,
                                 const torch::Tensor& rows, torch::Tensor y) const;
  // Whether block `l` keeps its activations for backward in this pass (the
  // recompute mode and budget); counts what it keeps.
  bool keeps_block(std::int64_t l, const torch::Tensor& x) const;
  // The last block at one position per sequence (`rows`), one sequence at
  // a time (prefixed_hidden_at's pruning); sharded, gathered once, and
  // recomputed the same way in backward.
  torch::Tensor call_last_block_at(const torch::Tensor& x, const Geometry& g,
                                   const torch::Tensor& rows) const;
  torch::Tensor run_block_per_sequence(const Block& block, const torch::Tensor& x,
                                       const Geometry& g, const torch::Tensor& rows) const;
  // Block `l` with its full weights (gathered when sharded); issues the gather of `next`.
  Block full_block(std::int64_t l, std::int64_t next) const;
  Geometry geometry(torch::Tensor& x, const torch::Tensor& valid) const;
  // Sharded: moves the prefetched gather on between the running block's products.
  void progress_gather() const;
  torch::Tensor norm(const Norm& n, const torch::Tensor& x) const;

  ModelConfig config_;
  ModelOptions options_;
  torch::Tensor tok_embeddings_, pos_embeddings_, lm_head_;
  Norm final_norm_;
  std::vector<Block> blocks_;
  const DropoutKeys* dropout_ = nullptr;
  std::shared_ptr<BlockShards> shards_;
  std::shared_ptr<VocabTable> embed_table_, output_table_;  // one table when tied
  std::int64_t parameter_count_ = 0;
  mutable std::int64_t kept_bytes_ = 0;  // this forward pass's kept blocks (keeps_block)
};

}  // namespace sparc
