// The configurations `sparc demo` runs, compiled into the binary from
// configs/demo/*.yaml (so the demo runs from any directory). Their paths say
// ../../data/ and ../../models/, which the demo points at its own directories.
#pragma once

#include <string>

namespace sparc::cli {

const std::string& demo_pretrain_yaml();
const std::string& demo_task_incremental_yaml();
const std::string& demo_domain_incremental_yaml();

// train.lr for the methods that update model weights (the configs' train.lr
// is for the prompt methods); lora.lr in the configs covers sparc+lora.
inline constexpr const char* kDemoLoraLr = "0.003";
inline constexpr const char* kDemoFullLr = "0.0003";

}  // namespace sparc::cli
