// Run-config validation: YAML syntax, keys, types, ranges, combinations, and
// --set overrides. Lines after a line "#--set" are taken as overrides. An
// accepted config must survive to_yaml and parse back equal.
#include <string>
#include <vector>

#include "fuzz_target.h"
#include "config/run_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(sparc::fuzz::as_text(data, size));
  std::vector<std::string> overrides;
  const std::string marker = "\n#--set\n";
  if (auto at = text.find(marker); at != std::string::npos) {
    std::string rest = text.substr(at + marker.size());
    text.resize(at);
    for (std::size_t b = 0, e; b <= rest.size(); b = e + 1) {
      e = rest.find('\n', b);
      if (e == std::string::npos) e = rest.size();
      overrides.push_back(rest.substr(b, e - b));
    }
  }
  try {
    sparc::RunConfig c = sparc::parse_run_config(text, "fuzz.yaml", "", overrides);
    sparc::RunConfig again = sparc::parse_run_config(sparc::to_yaml(c), "again.yaml", "");
    SPARC_FUZZ_CHECK(again == c);
  } catch (const sparc::InputError&) {
  }
  return 0;
}
