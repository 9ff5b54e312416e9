// The configurations `sparc demo` runs, compiled into the binary from
// configs/demo/*.yaml (so the demo runs from any directory). Their paths say
// ../../data/ and ../../models/, which the demo points at its own directories.
#pragma once

#include <string>

namespace sparc::demo {

const std::string& demo_pretrain_yaml();
const std::string& demo_task_incremental_yaml();
const std::string& demo_domain_incremental_yaml();

// train.lr for `full` (the configs' train.lr is the prompts', their lora.lr
// the adapters'). 0.001 learns every demo task and forgets earlier ones
// (task-incremental BWT -0.06 to -0.09); 0.0003 learned without forgetting.
inline constexpr const char* kDemoFullLr = "0.001";

}  // namespace sparc::demo
