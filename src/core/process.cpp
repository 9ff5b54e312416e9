#include "core/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/error.h"

extern char** environ;

namespace sparc {

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& log_path,
                           const std::vector<std::pair<std::string, std::string>>& env,
                           bool own_process_group) {
  if (argv.empty()) throw InputError("process", "no program given");
  std::map<std::string, std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) vars[std::string(*e, std::size_t(eq - *e))] = eq + 1;
  }
  for (const auto& [k, v] : env) vars[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : vars) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      posix_spawn_file_actions_destroy(&actions);
      throw InputError(log_path, std::string("cannot write the log file: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_adddup2(&actions, log_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, log_fd, STDERR_FILENO);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  if (own_process_group) {
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
  }
  const int rc = argv[0].find('/') == std::string::npos
                     ? posix_spawnp(&pid_, argv[0].c_str(), &actions, &attr, args.data(),
                                    envp.data())
                     : posix_spawn(&pid_, argv[0].c_str(), &actions, &attr, args.data(),
                                   envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (log_fd >= 0) ::close(log_fd);
  if (rc != 0) {
    pid_ = -1;
    throw InputError(argv[0], std::string("cannot start the program: ") + std::strerror(rc));
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && code_ < 0) {
    terminate();
    wait();
  }
}

void ChildProcess::reaped(int status) {
  code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool ChildProcess::poll() {
  if (code_ >= 0) return true;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) reaped(status);
  return code_ >= 0;
}

int ChildProcess::wait() {
  while (code_ < 0) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, 0);
    if (r == pid_) reaped(status);
    else if (r < 0 && errno != EINTR) code_ = 127;
  }
  return code_;
}

void ChildProcess::terminate(int signal) {
  if (pid_ > 0 && code_ < 0) ::kill(pid_, signal);
}

int run_process(const std::vector<std::string>& argv, const std::string& log_path,
                const std::vector<std::pair<std::string, std::string>>& env) {
  ChildProcess child(argv, log_path, env);
  return child.wait();
}

std::string self_executable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw InputError("/proc/self/exe", "cannot find the running executable: " + ec.message());
  return p.string();
}

}  // namespace sparc
