#include "core/error.h"

#include <cerrno>
#include <cstring>

namespace sparc {

InputError::InputError(const std::string& where, const std::string& what)
    : std::runtime_error(where.empty() ? what : where + ": " + what), where_(where) {}

std::string errno_text(const std::string& call) { return call + ": " + std::strerror(errno); }

}  // namespace sparc
