// The page's skeleton: head and stylesheet, the list of runs, one section per setting.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "report/html_report.h"
#include "report/page.h"
#include "report/svg.h"

namespace sparc::report::detail {
namespace {

std::string setting_title(const std::string& setting) {
  if (setting == "task-incremental") return "Task-incremental";
  if (setting == "domain-incremental") return "Domain-incremental";
  return "Setting: " + setting;
}
std::string setting_anchor(const std::string& setting) {
  std::string a = "setting-";
  for (char c : setting) a += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return a;
}

// The name a run goes by on the page: its method, plus the directory's
// last component when the same method appears twice in one setting.
std::vector<std::string> run_labels(const std::vector<const RunData*>& runs) {
  std::map<std::string, int> count;
  for (const auto* r : runs) ++count[r->method];
  std::vector<std::string> out;
  for (const auto* r : runs) {
    if (count[r->method] == 1) {
      out.push_back(r->method);
      continue;
    }
    std::string d = r->dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    out.push_back(r->method + " (" + d.substr(d.find_last_of('/') + 1) + ")");
  }
  return out;
}

const char* kStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1a1a1a; background: #ffffff; margin: 0 auto; padding: 16px 28px 48px;
       max-width: 1320px; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.35em; margin: 1.6em 0 0.4em; padding-bottom: 4px; border-bottom: 2px solid #ccc; }
h3 { font-size: 1.1em; margin: 1.4em 0 0.3em; }
p.note, p.meta { color: #444; margin: 0.2em 0 0.6em; font-size: 0.93em; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.92em; margin: 0.4em 0 0.8em; }
th, td { border: 1px solid #d0d0d0; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
td code { word-break: break-all; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; }
td.reused { background: #dcecf7; font-weight: 700; }
.scroll { overflow-x: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-weight: 600; margin: 0 0 4px; font-size: 0.98em; }
svg { max-width: 100%; height: auto; font-family: inherit; }
svg text { fill: #1a1a1a; }
svg text.cell { font-variant-numeric: tabular-nums; }
)";

}  // namespace

// A run's directory as the page names it: relative to the folder the page is
// written into (short, and still right when that folder is moved whole); the
// absolute path when there is no relative one; as given without a folder.
std::string Page::run_path(const RunData& run) const {
  if (report_dir_.empty()) return run.dir;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path rel = fs::relative(run.dir, report_dir_, ec);
  if (!ec && !rel.empty()) return rel.string();
  const fs::path abs = fs::absolute(run.dir, ec);
  return ec ? run.dir : abs.lexically_normal().string();
}

std::string Page::render(const std::vector<RunData>& runs) {
  out_ += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n";
  out_ += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n";
  out_ +=
      "<title>sparc report</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
  out_ += "<h1>sparc continual-learning report</h1>\n";
  out_ += "<p class=\"meta\">" + std::to_string(runs.size()) + " run" +
          (runs.size() == 1 ? "" : "s") + ": ";
  for (size_t i = 0; i < runs.size(); ++i)
    out_ += (i ? ", " : "") + std::string("<code>") + escape(run_path(runs[i])) + "</code>";
  out_ +=
      ". Accuracies are percentages of the test split; BWT, FWT and forgetting are in "
      "percentage points.</p>\n";

  // Settings in a fixed order, then any other in order of appearance.
  std::vector<std::string> settings = {"task-incremental", "domain-incremental"};
  for (const auto& r : runs)
    if (std::find(settings.begin(), settings.end(), r.setting) == settings.end())
      settings.push_back(r.setting);
  std::vector<std::pair<std::string, std::vector<const RunData*>>> groups;
  for (const auto& s : settings) {
    std::vector<const RunData*> members;
    for (const auto& r : runs)
      if (r.setting == s) members.push_back(&r);
    if (!members.empty()) groups.emplace_back(s, members);
  }
  if (groups.size() > 1) {
    out_ += "<p class=\"meta\">Settings:";
    for (const auto& [s, members] : groups)
      out_ += " <a href=\"#" + escape(setting_anchor(s)) + "\">" + escape(setting_title(s)) +
              "</a> (" + std::to_string(members.size()) + ")";
    out_ += "</p>\n";
  }

  for (const auto& [setting, members] : groups) {
    const bool domain = setting == "domain-incremental";
    const auto names = run_labels(members);
    out_ += "<section id=\"" + escape(setting_anchor(setting)) + "\">\n<h2>" +
            escape(setting_title(setting)) + "</h2>\n";
    // Task sequences: usually one for the whole setting.
    std::set<std::vector<std::string>> sequences;
    for (const auto* r : members) sequences.insert(r->tasks);
    for (const auto& seq : sequences) {
      out_ += "<p class=\"meta\">Task sequence: ";
      for (size_t i = 0; i < seq.size(); ++i)
        out_ += (i ? " &#8594; " : "") + std::string("<code>") + escape(seq[i]) + "</code>";
      out_ += "</p>\n";
    }
    metrics_table(members, names, domain);
    heatmaps(members, names);
    forgetting_chart(members, names);
    if (domain) routing_chart(members, names);
    loss_curves(members, names);
    reuse_tables(members, names);
    out_ += "</section>\n";
  }
  out_ += "</body>\n</html>\n";
  return std::move(out_);
}

}  // namespace sparc::report::detail
