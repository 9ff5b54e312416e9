#include "report/html_report.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "report/page.h"

namespace sparc::report {

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        // Control characters are not allowed in XML text: drop them.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') break;
        out += c;
    }
  }
  return out;
}

std::string render_html(const std::vector<RunData>& runs, const std::string& report_dir) {
  return detail::Page(report_dir).render(runs);
}

void write_report(const std::vector<std::string>& run_dirs, const std::string& out_path) {
  if (run_dirs.empty()) throw InputError("sparc report", "no run directory given");
  std::vector<RunData> runs;
  for (const auto& d : run_dirs) runs.push_back(load_run(d));
  // The folder the page goes into; the current one for a bare file name.
  std::string report_dir = std::filesystem::path(out_path).parent_path().string();
  if (report_dir.empty()) report_dir = ".";
  const std::string html = render_html(runs, report_dir);
  const std::string tmp = out_path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw InputError(out_path, "cannot write");
    f << html;
    if (!f.flush()) throw InputError(out_path, "write failed");
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0)
    throw InputError(out_path, errno_text("rename"));
}

}  // namespace sparc::report
