#include "core/fault.h"

#include <csignal>
#include <cstdlib>

#include "core/error.h"

namespace sparc {

void fault_point(const std::string& point, std::int64_t count, int rank) {
  const char* spec = std::getenv("SPARC_FAULT");
  if (spec == nullptr || *spec == '\0') return;
  if (const char* r = std::getenv("SPARC_FAULT_RANK"); r && *r && std::atoi(r) != rank) return;
  const std::string s = spec;
  const auto at = s.find('@'), colon = s.rfind(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at)
    throw InputError("SPARC_FAULT", "expected ACTION@POINT:N (e.g. kill@step:3), got '" + s + "'");
  const std::string action = s.substr(0, at), where = s.substr(at + 1, colon - at - 1);
  const long long n = std::atoll(s.c_str() + colon + 1);
  if (action != "kill" && action != "stop")
    throw InputError("SPARC_FAULT", "unknown action '" + action + "', expected kill or stop");
  if (n < 1) throw InputError("SPARC_FAULT", "N must be a positive count, got '" + s + "'");
  if (where != point || count != n) return;
  std::raise(action == "kill" ? SIGKILL : SIGSTOP);
}

}  // namespace sparc
