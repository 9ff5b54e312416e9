// sparc demo: the orchestration behind demo.h.
#include "demo/demo.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "config/method.h"
#include "core/error.h"
#include "core/file.h"
#include "core/process.h"
#include "demo/demo_configs.h"
#include "report/html_report.h"
#include "report/run_data.h"

namespace sparc::demo {

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto& m : all_methods()) names.emplace_back(m.name);
  return names;
}

namespace {

// --device and --backend as --set overrides, keyed as both configs name them.
std::vector<std::string> placement_overrides(const Options& o) {
  std::vector<std::string> sets;
  if (!o.device.empty()) sets.push_back("model.device=" + o.device);
  if (!o.backend.empty()) sets.push_back("comm.backend=" + o.backend);
  return sets;
}

}  // namespace

std::vector<std::string> pretrain_overrides(const Options& o) {
  auto sets = placement_overrides(o);
  sets.insert(sets.end(), o.pretrain_sets.begin(), o.pretrain_sets.end());
  return sets;
}

std::vector<std::string> train_overrides(const Options& o) {
  auto sets = placement_overrides(o);
  sets.insert(sets.end(), o.train_sets.begin(), o.train_sets.end());
  return sets;
}

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

std::string absolute(const std::string& p) {
  return fs::absolute(p).lexically_normal().string();
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// The embedded configs name data and model as ../../data/ and ../../models/
// (so they also run from configs/demo/ in a checkout); here they point at
// the demo's own directories.
std::string localize(const std::string& yaml, const std::string& data, const std::string& models) {
  return replace_all(replace_all(yaml, "../../data/", data + "/"), "../../models/", models + "/");
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw InputError(path, "cannot write");
}

std::string format_duration(double s) {
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

// The last complete, non-empty line of a log, without spdlog's time/level
// prefix and with carriage-return progress reduced to its latest state.
std::string last_log_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>(0, size - 4096);
  in.seekg(from);
  std::string tail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string line;
  std::istringstream lines(tail);
  for (std::string l; std::getline(lines, l);) {
    if (auto cr = l.find_last_of('\r'); cr != std::string::npos) {
      std::string after = l.substr(cr + 1);
      l = after.find_first_not_of(' ') == std::string::npos ? l.substr(0, cr) : after;
      if (auto cr2 = l.find_last_of('\r'); cr2 != std::string::npos) l = l.substr(cr2 + 1);
    }
    if (l.find_first_not_of(" \t") != std::string::npos) line = l;
  }
  if (line.size() > 2 && line[0] == '[') {  // "[hh:mm:ss.mmm] [info] "
    auto second = line.find("] ", line.find("] ") + 2);
    if (line.find("] ") != std::string::npos && second != std::string::npos &&
        line[line.find("] ") + 2] == '[')
      line = line.substr(second + 2);
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

int terminal_width() {
  winsize w{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 20) return w.ws_col;
  return 100;
}

class Demo {
 public:
  explicit Demo(Options o) : o_(std::move(o)) {
    out_ = absolute(o_.out);
    data_ = absolute(o_.data);
    models_ = absolute(o_.models);
    tty_ = ::isatty(STDOUT_FILENO) != 0;
    threads_ = o_.threads;
    self_ = self_executable();
  }

  int run() {
    const auto start = Clock::now();
    make_directories(out_ + "/configs");
    make_directories(out_ + "/logs");
    write_file(out_ + "/configs/pretrain.yaml", localize(demo_pretrain_yaml(), data_, models_));
    write_file(out_ + "/configs/task-incremental.yaml",
               localize(demo_task_incremental_yaml(), data_, models_));
    write_file(out_ + "/configs/domain-incremental.yaml",
               localize(demo_domain_incremental_yaml(), data_, models_));
    total_ = 2 + int(o_.settings.size() * o_.methods.size());
    std::cout << "sparc demo: " << total_ << " steps into " << out_ << " (" << o_.ranks
              << " rank" << (o_.ranks == 1 ? "" : "s") << " x " << threads_ << " thread"
              << (threads_ == 1 ? "" : "s") << "; logs in " << out_ << "/logs)\n";

    std::vector<std::string> prep = {"prepare-data", "all", "--out", data_};
    if (!o_.sources.empty()) prep.insert(prep.end(), {"--sources", o_.sources});
    if (int rc = step("prepare data", "prepare-data", prep, false); rc != 0) return rc;
    std::cout << "\n";
    std::vector<std::string> pre = {"pretrain", "--config", out_ + "/configs/pretrain.yaml"};
    for (const auto& s : pretrain_overrides(o_)) pre.insert(pre.end(), {"--set", s});
    if (int rc = step("pretrain the base model", "pretrain", pre, true); rc != 0)
      return rc;
    std::cout << "\n";

    std::vector<std::string> dirs;
    for (const auto& setting : o_.settings) {
      for (const auto& method : o_.methods) {
        const std::string dir = out_ + "/" + setting + "/" + method;
        dirs.push_back(dir);
        if (file_exists(dir + "/results.json")) {
          announce(setting + " / " + method, false);
          std::cout << "finished earlier (" << dir << "/results.json)\n";
          continue;
        }
        std::vector<std::string> args = {"train",     "--config", out_ + "/configs/" + setting + ".yaml",
                                         "--run-dir", dir,        "--resume",
                                         "auto",      "--set",    "method=" + method};
        MethodId id = MethodId::kSparc;
        parse_method_name(method, &id);  // --methods accepts method names only
        for (const auto& s : method_overrides(id)) args.insert(args.end(), {"--set", s});
        for (const auto& s : train_overrides(o_)) args.insert(args.end(), {"--set", s});
        const std::string log = setting + "-" + replace_all(method, "+", "-");
        if (int rc = step(setting + " / " + method, log, args, true); rc != 0) return rc;
        print_run_line(dir);
      }
    }
    report::write_report(dirs, out_ + "/report.html");
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    summarize(dirs, seconds);
    std::cout << "report: " << out_ << "/report.html\n";
    return kExitOk;
  }

 private:
  // Learning rates per method: the embedded configs' train.lr is the prompts'
  // (sparc, prompt, and the prompt of sparc+lora) and their lora.lr the
  // adapters' (lora, sparc+lora); full fine-tuning needs a far smaller step.
  static std::vector<std::string> method_overrides(MethodId method) {
    if (method_traits(method).trains_weights) return {"train.lr=" + std::string(kDemoFullLr)};
    return {};
  }

  // "[i/n] name: "; off a terminal a step's start gets a line of its own.
  void announce(const std::string& name, bool starting) {
    ++index_;
    std::cout << "[" << index_ << "/" << total_ << "] " << name << ": ";
    if (starting && !tty_) std::cout << "started\n";
    std::cout << std::flush;
  }

  std::vector<std::string> command(const std::vector<std::string>& args, bool parallel) const {
    std::vector<std::string> cmd;
    if (parallel && o_.ranks > 1)
      cmd = {"mpirun", "-n", std::to_string(o_.ranks), "--oversubscribe", "-x", "OMP_NUM_THREADS",
             "-x", "OPENBLAS_NUM_THREADS"};
    cmd.push_back(self_);
    cmd.insert(cmd.end(), {"--threads", std::to_string(threads_)});
    cmd.insert(cmd.end(), args.begin(), args.end());
    return cmd;
  }

  // Runs one step as a child, showing its latest log line while it works.
  int step(const std::string& name, const std::string& log_name,
           const std::vector<std::string>& args, bool parallel) {
    announce(name, true);
    const std::string log = out_ + "/logs/" + log_name + ".log";
    const std::string t = std::to_string(threads_);
    std::vector<std::pair<std::string, std::string>> env = {{"OMP_NUM_THREADS", t},
                                                            {"OPENBLAS_NUM_THREADS", t}};
    if (::geteuid() == 0)
      env.insert(env.end(), {{"OMPI_ALLOW_RUN_AS_ROOT", "1"}, {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"}});
    const auto start = Clock::now();
    ChildProcess child(command(args, parallel), log, env, /*own_process_group=*/true);
    std::string shown;
    auto last_print = start;
    while (!child.poll()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      if (g_signal != 0 && !interrupted_) {
        // The child runs in its own process group, so this is the one stop
        // request it gets: a single sparc checkpoints and exits 75; mpirun
        // ends its ranks, and the rerun resumes from the last periodic
        // checkpoint (checkpoint.every_steps).
        child.terminate(SIGTERM);
        interrupted_ = true;
      }
      const auto now = Clock::now();
      const std::string line = last_log_line(log);
      const std::string elapsed =
          format_duration(std::chrono::duration<double>(now - start).count());
      if (tty_) {
        std::string text = "[" + std::to_string(index_) + "/" + std::to_string(total_) + "] " +
                           name + " " + elapsed + "  " + line;
        const std::size_t width = std::size_t(terminal_width() - 1);
        if (text.size() > width) text.resize(width);
        std::cout << "\r" << text << "\033[K" << std::flush;
      } else if (line != shown && now - last_print > std::chrono::seconds(20)) {
        std::cout << "  " << elapsed << "  " << line << "\n" << std::flush;
        shown = line;
        last_print = now;
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::cout << (tty_ ? "\r" : "") << "[" << index_ << "/" << total_ << "] " << name << ": "
              << (tty_ ? "\033[K" : "");
    const int rc = child.exit_code();
    if (rc == 0 && !interrupted_) {
      std::cout << "done in " << format_duration(seconds) << std::flush;
      return 0;
    }
    std::cout << "failed (exit " << rc << ") after " << format_duration(seconds) << "\n";
    std::cout << "---- last lines of " << log << " ----\n";
    std::ifstream in(log);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    for (std::size_t i = lines.size() > 15 ? lines.size() - 15 : 0; i < lines.size(); ++i)
      std::cout << lines[i] << "\n";
    if (interrupted_ || rc == kExitResumable) {
      std::cout << "stopped; run the same command again to continue where it left off\n";
      return kExitResumable;
    }
    return rc == kExitInputError ? kExitInputError : kExitInternal;
  }

  void print_run_line(const std::string& dir) {
    auto r = report::load_run(dir);
    char buf[160];
    std::snprintf(buf, sizeof buf, "  ACC %.3f  BWT %+.3f", r.acc, r.bwt);
    std::cout << buf;
    if (!std::isnan(r.routing_accuracy)) std::cout << "  routing " << r.routing_accuracy;
    std::cout << "\n";
  }

  void summarize(const std::vector<std::string>& dirs, double seconds);

  Options o_;
  std::string out_, data_, models_, self_;
  bool tty_ = false, interrupted_ = false;
  int threads_ = 1, index_ = 0, total_ = 0;
};

std::string fmt(double v, const char* f = "%.3f") {
  if (std::isnan(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The summary table (markdown, also written to summary.md) and summary.json.
// A task counts as learned when the accuracy right after training it beats
// the zero-shot accuracy by two standard errors of its test set (the binomial
// error at p = 0.5, the largest); "kept" uses the accuracy after the last task.
void Demo::summarize(const std::vector<std::string>& dirs, double seconds) {
  std::ostringstream md;
  nlohmann::json js = nlohmann::json::array();
  md << "| setting | method | ACC | BWT | FWT | forgetting | routing | trainable % | tokens/s | "
        "learned (> zero-shot + 2 SE) | kept |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::vector<report::RunData> runs;
  for (const auto& dir : dirs) runs.push_back(report::load_run(dir));
  for (const auto& r : runs) {
    const std::string& dir = r.dir;
    const std::size_t n = r.tasks.size();
    int learned = 0, kept = 0;
    for (std::size_t j = 0; j < n && !r.zero_shot.empty(); ++j) {
      const double se = std::sqrt(0.25 / double(std::max<std::int64_t>(1, r.test_sizes[j])));
      if (r.accuracy[j][j] > r.zero_shot[j] + 2 * se) ++learned;
      if (r.accuracy[n - 1][j] > r.zero_shot[j] + 2 * se) ++kept;
    }
    md << "| " << r.setting << " | " << r.method << " | " << fmt(r.acc) << " | "
       << fmt(r.bwt, "%+.3f") << " | " << fmt(r.fwt, "%+.3f") << " | " << fmt(r.forgetting)
       << " | " << fmt(r.routing_accuracy) << " | " << fmt(100 * r.trainable_fraction, "%.3f")
       << " | " << fmt(r.tokens_per_s, "%.0f") << " | " << learned << "/" << n << " | " << kept
       << "/" << n << " |\n";
    js.push_back({{"dir", dir},
                  {"setting", r.setting},
                  {"method", r.method},
                  {"acc", r.acc},
                  {"bwt", r.bwt},
                  {"tasks", r.tasks},
                  {"zero_shot", r.zero_shot},
                  {"accuracy_matrix", r.accuracy},
                  {"learned", learned},
                  {"kept", kept}});
  }
  md << "\nZero-shot accuracy per task:";
  if (!runs.empty()) {
    for (const auto& setting : o_.settings) {
      for (const auto& r : runs) {
        if (r.setting != setting) continue;
        md << "\n- " << setting << ":";
        for (std::size_t j = 0; j < r.tasks.size() && j < r.zero_shot.size(); ++j)
          md << " " << r.tasks[j] << " " << fmt(r.zero_shot[j]) << " (n=" << r.test_sizes[j]
             << ")" << (j + 1 < r.tasks.size() ? "," : "");
        break;
      }
    }
  }
  md << "\n\nDemo time: " << format_duration(seconds) << " (" << o_.ranks << " rank"
     << (o_.ranks == 1 ? "" : "s") << " x " << threads_ << " thread" << (threads_ == 1 ? "" : "s")
     << ").\n";
  write_file(out_ + "/summary.md", md.str());
  write_file(out_ + "/summary.json", js.dump(2) + "\n");
  std::cout << "\n" << md.str();
}

}  // namespace

int run_demo(const Options& o) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  Demo demo(o);
  return demo.run();
}

}  // namespace sparc::demo
