// Small model and tokenizer tools: sparc tokenize, sparc convert.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "model/hf_model.h"
#include "model/model_loader.h"
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

}  // namespace sparc::cli
