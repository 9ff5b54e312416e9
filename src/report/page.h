// The report page, built section by section into one string: the skeleton
// (page.cpp), the tables (tables.cpp) and the charts (charts.cpp). Internal
// to src/report/.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "report/run_data.h"

namespace sparc::report::detail {

class Page {
 public:
  // report_dir: the folder the page is written into ("": none).
  explicit Page(std::string report_dir) : report_dir_(std::move(report_dir)) {}
  std::string render(const std::vector<RunData>& runs);

 private:
  std::string run_path(const RunData& run) const;
  void metrics_table(const std::vector<const RunData*>& runs, const std::vector<std::string>& names,
                     bool domain);
  void heatmaps(const std::vector<const RunData*>& runs, const std::vector<std::string>& names);
  std::string heatmap(const RunData& run, const std::string& name);
  void forgetting_chart(const std::vector<const RunData*>& runs,
                        const std::vector<std::string>& names);
  void routing_chart(const std::vector<const RunData*>& runs,
                     const std::vector<std::string>& names);
  void loss_curves(const std::vector<const RunData*>& runs, const std::vector<std::string>& names);
  std::string loss_chart(const RunData& run, const std::string& name);
  void reuse_tables(const std::vector<const RunData*>& runs, const std::vector<std::string>& names);

  std::string report_dir_;
  std::string out_;
  int ids_ = 0;  // unique SVG ids (gradients) across the page
};

}  // namespace sparc::report::detail
