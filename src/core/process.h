// Child processes: the external tools the project drives (spm_train for a
// pretrained tokenizer, mpirun and sparc itself for `sparc demo`). Arguments
// are passed as a vector, never through a shell.
#pragma once

#include <sys/types.h>

#include <csignal>

#include <string>
#include <utility>
#include <vector>

namespace sparc {

class ChildProcess {
 public:
  // Starts argv[0] (looked up on PATH when it has no '/'), with `env` added
  // to (or replacing in) this process's environment. stdout and stderr go
  // to `log_path` (truncated) or, when it is empty, to this process's.
  // With `own_process_group`, a Ctrl-C at the terminal reaches this process
  // only, which then decides what to send the child. Throws InputError naming the program when it cannot be started (not
  // found, not executable, log file not writable).
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path = "",
               const std::vector<std::pair<std::string, std::string>>& env = {},
               bool own_process_group = false);
  ~ChildProcess();  // a child still running is sent SIGTERM and reaped
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // True once the child has ended; its status is then exit_code().
  bool poll();
  // Blocks until the child ends; returns exit_code().
  int wait();
  // The exit status, or 128 + signal number for a child ended by a signal
  // (as shells report it). -1 while running.
  int exit_code() const { return code_; }
  void terminate(int signal = SIGTERM);
  pid_t pid() const { return pid_; }

 private:
  void reaped(int status);
  pid_t pid_ = -1;
  int code_ = -1;
};

// Runs a program to completion: ChildProcess(...).wait().
int run_process(const std::vector<std::string>& argv, const std::string& log_path = "",
                const std::vector<std::pair<std::string, std::string>>& env = {});

// The path of the running executable (/proc/self/exe).
std::string self_executable();

}  // namespace sparc
