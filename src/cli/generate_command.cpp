// sparc generate: text from a frozen model, to check a model and tokenizer
// load and behave (greedy at temperature 0). Prints the continuation only.
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/log.h"
#include "model/generator.h"
#include "model/model_loader.h"
#include "tokenizer/tokenizer.h"

namespace sparc::cli {

void add_generate_command(CLI::App& app, std::vector<Command>& commands) {
  struct Args {
    std::string model, tokenizer, prompt, dtype = "f32", device = "cpu";
    int max_new_tokens = 64;
    double temperature = 0.0;
    std::uint64_t seed = 0;
  };
  auto args = std::make_shared<Args>();
  auto* sub = app.add_subcommand("generate", "Continue a prompt with a frozen model");
  sub->add_option("--model", args->model, "llama2.c .bin checkpoint or Hugging Face model directory")->required();
  sub->add_option("--tokenizer", args->tokenizer,
                  "tokenizer file or directory, or 'bytes' (default: the model directory, "
                  "or tokenizer.bin beside a .bin model)");
  sub->add_option("--prompt", args->prompt, "text to continue (default: empty, start from BOS)");
  sub->add_option("--max-new-tokens", args->max_new_tokens, "tokens to generate")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  sub->add_option("--temperature", args->temperature, "0 = greedy")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub->add_option("--seed", args->seed, "seed for sampling")->capture_default_str();
  sub->add_option("--dtype", args->dtype, "f32 or bf16")->capture_default_str();
  sub->add_option("--device", args->device, "cpu or cuda[:N]")->capture_default_str();

  commands.push_back({sub, [args]() {
    ModelOptions options;
    options.dtype = parse_model_dtype(args->dtype, "--dtype");
    options.device = parse_model_device(args->device, "--device");
    std::string tok_path = args->tokenizer.empty() ? default_tokenizer_path(args->model)
                                                   : args->tokenizer;
    if (tok_path.empty())
      throw InputError(args->model, "no tokenizer.bin beside the model; pass --tokenizer");
    auto tokenizer = load_tokenizer(tok_path);
    auto source = open_model(args->model);
    if (tokenizer->vocab_size() > source->config().vocab_size)
      throw InputError(tok_path, "tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                                     " tokens but the model's vocabulary has " +
                                     std::to_string(source->config().vocab_size));
    Transformer model(*source, options);
    if (auto line = settle_threads_for_model(model.config().dim); !line.empty()) spdlog::info(line);
    spdlog::info("model {}: {} ({} parameters, {})", args->model, model.config().summary(),
                 model.parameter_count(), args->dtype);

    auto prompt = tokenizer->encode_with_bos(args->prompt);
    if (prompt.empty())
      throw InputError(tok_path, "tokenizer has no BOS token; pass a non-empty --prompt");
    GenerateOptions gen;
    gen.max_new_tokens = args->max_new_tokens;
    gen.temperature = args->temperature;
    gen.seed = args->seed;
    gen.eos_id = tokenizer->eos_id();

    // Print text as it appears: decode the whole sequence, emit what is new
    // (a piece may be half of a UTF-8 character until the next token).
    std::vector<std::int32_t> seq = prompt;
    std::string shown = tokenizer->decode(seq);
    generate(model, prompt, gen, [&](std::int32_t id) {
      seq.push_back(id);
      std::string text = tokenizer->decode(seq);
      if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) {
        std::cout << text.substr(shown.size()) << std::flush;
        shown = text;
      }
    });
    std::cout << std::endl;
    return kExitOk;
  }});
}

}  // namespace sparc::cli
