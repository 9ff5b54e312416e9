// Small model and tokenizer tools: sparc tokenize, sparc convert, sparc random-model.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "model/hf_model.h"
#include "model/model_loader.h"
#include "model/random_model.h"
#include "model/weight_source.h"
#include "tokenizer/tokenizer.h"

namespace sparc::cli {

void add_tokenize_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string tokenizer, text;
    bool bos = false;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of a text as a JSON array");
  sub->add_option("--tokenizer", args->tokenizer,
                  "tokenizer file or model directory, or 'bytes'")
      ->required();
  sub->add_option("text", args->text, "the text")->required();
  sub->add_flag("--bos", args->bos, "prepend the BOS token");
  commands.push_back({sub, [args]() {
    auto tok = load_tokenizer(args->tokenizer);
    auto ids = args->bos ? tok->encode_with_bos(args->text) : tok->encode(args->text);
    std::cout << nlohmann::json(ids).dump() << "\n";
    return kExitOk;
  }});
}

void add_convert_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string model, out, dtype = "f32";
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "convert", "Write a llama model (e.g. a llama2.c .bin) as a Hugging Face directory");
  sub->add_option("--model", args->model, "llama2.c .bin or Hugging Face directory")->required();
  sub->add_option("--out", args->out, "output directory (created)")->required();
  sub->add_option("--dtype", args->dtype, "f32, bf16 or f16")->capture_default_str();
  commands.push_back({sub, [args]() {
    auto source = open_model(args->model);
    write_hf_llama_directory(*source, args->out, args->dtype);
    spdlog::info("wrote {} ({})", args->out, source->config().summary());
    return kExitOk;
  }});
}

void add_random_model_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string out, dtype = "f32", preset;
    std::int64_t dim = 512, layers = 8, heads = 8, kv_heads = 0, ffn = 1376, vocab = 512;
    std::int64_t max_seq_len = 2048;
    std::uint64_t seed = 0;
    bool untie = false;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "random-model",
      "Write a llama model with random weights (normal, std 0.02) as a Hugging Face directory: "
      "benchmarks and memory tests at sizes no shared model has; pair it with tokenizer: bytes. "
      "Written tensor by tensor: the command holds about one tensor, whatever the model size");
  sub->add_option("--out", args->out, "output directory (created)")->required();
  sub->add_option("--dim", args->dim, "hidden size D")->capture_default_str();
  sub->add_option("--layers", args->layers, "blocks")->capture_default_str();
  sub->add_option("--heads", args->heads, "attention heads")->capture_default_str();
  sub->add_option("--kv-heads", args->kv_heads, "key/value heads (0: --heads)");
  sub->add_option("--ffn", args->ffn, "SwiGLU hidden size")->capture_default_str();
  sub->add_option("--vocab", args->vocab, "vocabulary (>= 259 for the bytes tokenizer)")
      ->capture_default_str();
  sub->add_option("--seed", args->seed, "random seed")->capture_default_str();
  sub->add_option("--dtype", args->dtype, "f32, bf16 or f16")->capture_default_str();
  sub->add_flag("--untie-embeddings", args->untie,
                "a separate output layer (lm_head), as Llama 2 has; default: tied to the embedding");
  sub->add_option("--preset", args->preset,
                  "llama2-7b: D=4096, 32 layers, 32 heads, FFN 11008, vocab 32000, untied, bf16 "
                  "(13.5 GB); overrides the shape options and --dtype")
      ->check(CLI::IsMember({"llama2-7b"}));
  commands.push_back({sub, [args]() {
    if (args->preset == "llama2-7b") {
      args->dim = 4096, args->layers = 32, args->heads = 32, args->kv_heads = 0;
      args->ffn = 11008, args->vocab = 32000, args->max_seq_len = 4096, args->dtype = "bf16";
      args->untie = true;
    }
    ModelConfig c;
    c.arch = Arch::kLlama;
    c.vocab_size = args->vocab;
    c.dim = args->dim;
    c.n_layers = args->layers;
    c.n_heads = args->heads;
    c.n_kv_heads = args->kv_heads > 0 ? args->kv_heads : args->heads;
    c.head_dim = args->heads > 0 ? args->dim / args->heads : 0;
    c.ffn_dim = args->ffn;
    c.max_seq_len = args->max_seq_len;
    c.tie_embeddings = !args->untie;
    c.validate("random-model");
    write_random_llama_directory(c, args->seed, args->out, args->dtype);
    spdlog::info("wrote {} ({}, {} parameters)", args->out, c.summary(), c.parameter_count());
    return kExitOk;
  }});
}

}  // namespace sparc::cli
