#include "core/fault.h"

#include <csignal>
#include <cstdlib>

#include "core/error.h"

namespace sparc {

bool fault_point(const std::string& point, std::int64_t count, int rank) {
  const char* spec = std::getenv("SPARC_FAULT");
  if (spec == nullptr || *spec == '\0') return false;
  if (const char* r = std::getenv("SPARC_FAULT_RANK"); r && *r && std::atoi(r) != rank)
    return false;
  const std::string s = spec;
  const auto at = s.find('@'), colon = s.rfind(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at)
    throw InputError("SPARC_FAULT", "expected ACTION@POINT:N (e.g. kill@step:3), got '" + s + "'");
  const std::string action = s.substr(0, at), where = s.substr(at + 1, colon - at - 1);
  const std::string range = s.substr(colon + 1);
  const auto dash = range.find('-');
  const long long n = std::atoll(range.c_str());
  const long long last = dash == std::string::npos ? n : std::atoll(range.c_str() + dash + 1);
  if (action != "kill" && action != "stop" && action != "nan")
    throw InputError("SPARC_FAULT", "unknown action '" + action + "', expected kill, stop or nan");
  if (n < 1 || last < n)
    throw InputError("SPARC_FAULT", "N must be a positive count or a range A-B, got '" + s + "'");
  if (where != point || count < n || count > last) return false;
  if (action == "nan") return true;
  std::raise(action == "kill" ? SIGKILL : SIGSTOP);
  return false;
}

}  // namespace sparc
