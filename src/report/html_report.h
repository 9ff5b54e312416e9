// `sparc report`: one self-contained HTML page comparing finished runs.
// Every chart is inline SVG made here: no script, no stylesheet, font or
// image from elsewhere, so the page opens offline and can be mailed as is.
// All text taken from run files is escaped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "report/run_data.h"

namespace sparc::report {

// Escapes & < > " ' for HTML text and attribute values (and SVG/XML).
std::string escape(std::string_view text);

// The page for `runs`, grouped by setting (task-incremental first, then
// domain-incremental, then any other), runs in the order given. Run
// directories are named by their path relative to `report_dir`, the folder
// the page is written into (as given in RunData::dir when empty).
std::string render_html(const std::vector<RunData>& runs, const std::string& report_dir = "");

// Loads every run directory (InputError on the first bad one) and writes
// the page to `out_path`, naming the runs relative to out_path's folder.
// What `sparc report` and `sparc demo` call.
void write_report(const std::vector<std::string>& run_dirs, const std::string& out_path);

}  // namespace sparc::report
