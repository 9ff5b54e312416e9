// sparc report on hand-written run directories: the parsed numbers, the
// page's structure (well-formed, one heatmap per run with the matrix's
// values, metrics table), escaping of names taken from files, and that the
// page references nothing outside itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "report/html_report.h"
#include "report/run_data.h"
#include "test_util.h"

namespace {

using sparc::report::RunData;

const std::string kEvil = "<script>alert(\"x\")</script> & co";
const std::string kEvilJson = R"(<script>alert(\"x\")</script> & co)";

// Task-incremental sparc run. A = [[.80 .50 .25] [.70 .90 .30] [.60 .85 .95]],
// b = [.50 .50 .25]: ACC .80, BWT -.125, FWT +.025, forgetting .125.
const std::string kSparcResults = R"({
  "method": "sparc", "setting": "task-incremental",
  "tasks": ["nature", "mood", ")" +
                                  kEvilJson + R"("],
  "accuracy_matrix": [[0.80, 0.50, 0.25], [0.70, 0.90, 0.30], [0.60, 0.85, 0.95]],
  "test_sizes": [20, 20, 40],
  "zero_shot": [0.50, 0.50, 0.25],
  "acc": 0.80, "bwt": -0.125, "fwt": 0.025, "forgetting": 0.125,
  "forgetting_per_task": [0.20, 0.05, 0.0],
  "retention": [75.0, 94.44444444444444, 100.0],
  "trainable_params": 128, "trainable_params_total": 384, "model_params": 260000,
  "trainable_fraction": 0.0004923076923076923,
  "reuse": [
    {"task": "nature", "reused_from": null, "similarities": {}, "orthogonal_directions": 0,
     "orthogonal_capped": false},
    {"task": "mood", "reused_from": "nature", "similarities": {"nature": 0.912},
     "orthogonal_directions": 0, "orthogonal_capped": false},
    {"task": ")" + kEvilJson + R"(", "reused_from": null,
     "similarities": {"mood": 0.301, "nature": 0.287}, "orthogonal_directions": 8,
     "orthogonal_capped": true}
  ],
  "routing_accuracy": null, "ppl_before": 12.5, "ppl_after": 12.5
})";

// Last tokens_per_s per task: 1000, 2000, 3000 (mean 2000).
const std::string kSparcMetrics =
    R"({"task":"nature","step":10,"loss":2.5,"lr":1.0,"tokens_per_s":900}
{"task":"nature","step":20,"loss":1.5,"lr":0.5,"tokens_per_s":1000}
{"task":"mood","step":10,"loss":2.0,"lr":1.0,"tokens_per_s":2000}
{"task":")" +
    kEvilJson + R"(","step":10,"loss":3.0,"lr":1.0,"tokens_per_s":2500}
{"task":")" +
    kEvilJson + R"(","step":20,"loss":1.0,"lr":0.1,"tokens_per_s":3000}
)";

// Task-incremental lora: A = [[.9 .5 .5] [.4 .8 .5] [.3 .35 .7]]: ACC .45, BWT -.525.
const std::string kLoraResults = R"({
  "method": "lora", "setting": "task-incremental",
  "tasks": ["nature", "mood", ")" +
                                 kEvilJson + R"("],
  "accuracy_matrix": [[0.9, 0.5, 0.5], [0.4, 0.8, 0.5], [0.3, 0.35, 0.7]],
  "test_sizes": [20, 20, 40], "zero_shot": [0.50, 0.50, 0.25],
  "acc": 0.45, "bwt": -0.525, "fwt": 0.125, "forgetting": 0.525,
  "forgetting_per_task": [0.6, 0.45, 0.0], "retention": [33.33333333333333, 43.75, 100.0],
  "trainable_params": 4096, "trainable_params_total": 4096, "model_params": 260000,
  "trainable_fraction": 0.015753846153846154,
  "reuse": [{"task": "nature", "reused_from": null, "similarities": {},
             "orthogonal_directions": 0, "orthogonal_capped": false}],
  "routing_accuracy": null, "ppl_before": 12.5, "ppl_after": 14.25
})";

// Domain-incremental sparc with routing.
const std::string kDomainResults = R"({
  "method": "sparc", "setting": "domain-incremental", "tasks": ["a", "b"],
  "accuracy_matrix": [[0.9, 0.6], [0.85, 0.8]], "test_sizes": [10, 10], "zero_shot": [0.5, 0.5],
  "acc": 0.825, "bwt": -0.05, "fwt": 0.1, "forgetting": 0.05,
  "forgetting_per_task": [0.05, 0.0], "retention": [94.44444444444444, 100.0],
  "trainable_params": 128, "trainable_params_total": 256, "model_params": 260000,
  "trainable_fraction": 0.0004923076923076923, "reuse": [],
  "routing_accuracy": 0.875, "ppl_before": 9.0, "ppl_after": 9.0
})";

std::string make_run(const std::string& results, const std::string& metrics = "",
                     const std::string& config = "") {
  const std::string dir = sparc::test::make_temp_dir();
  std::ofstream(dir + "/results.json") << results;
  if (!metrics.empty()) std::ofstream(dir + "/metrics.jsonl") << metrics;
  if (!config.empty()) std::ofstream(dir + "/config.yaml") << config;
  return dir;
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// The text of every <text class="cell"...>VALUE</text> in `svg`, in order.
std::vector<std::string> cell_values(const std::string& svg) {
  std::vector<std::string> out;
  static const std::regex cell(R"(<text [^>]*class="cell"[^>]*>([^<]*)</text>)");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), cell); it != std::sregex_iterator();
       ++it)
    out.push_back((*it)[1]);
  return out;
}

// The heatmap SVGs of the page, in order.
std::vector<std::string> heatmaps(const std::string& html) {
  std::vector<std::string> out;
  for (size_t p = html.find("<svg class=\"heatmap\""); p != std::string::npos;
       p = html.find("<svg class=\"heatmap\"", p + 1))
    out.push_back(html.substr(p, html.find("</svg>", p) - p));
  return out;
}

// Checks that tags nest and close (the page is written as XHTML-style
// markup: void elements self-close), that '<' only opens a tag and '&' only
// an entity. Returns the first problem, or "".
std::string markup_problem(const std::string& html) {
  std::vector<std::string> open;
  static const std::regex entity(R"(^&(amp|lt|gt|quot|#[0-9]+);)");
  for (size_t i = 0; i < html.size(); ++i) {
    if (html[i] == '&') {
      std::smatch m;
      const std::string rest = html.substr(i, 12);
      if (!std::regex_search(rest, m, entity)) return "bare '&' at " + std::to_string(i);
      continue;
    }
    if (html[i] != '<') continue;
    if (html.compare(i, 2, "<!") == 0) {
      i = html.find('>', i);
      continue;
    }
    const bool closing = html.compare(i, 2, "</") == 0;
    size_t j = i + (closing ? 2 : 1);
    size_t name_end = j;
    while (name_end < html.size() && (std::isalnum(static_cast<unsigned char>(html[name_end]))))
      ++name_end;
    const std::string name = html.substr(j, name_end - j);
    if (name.empty()) return "'<' not opening a tag at " + std::to_string(i);
    // Find the tag's end, skipping quoted attribute values.
    char quote = 0;
    size_t k = name_end;
    for (; k < html.size(); ++k) {
      if (quote) {
        if (html[k] == quote)
          quote = 0;
        else if (html[k] == '<')
          return "'<' inside an attribute at " + std::to_string(k);
      } else if (html[k] == '"' || html[k] == '\'') {
        quote = html[k];
      } else if (html[k] == '>') {
        break;
      }
    }
    if (k == html.size()) return "unterminated tag <" + name;
    if (closing) {
      if (open.empty() || open.back() != name)
        return "</" + name + "> closes <" + (open.empty() ? "nothing" : open.back()) + ">";
      open.pop_back();
    } else if (html[k - 1] != '/') {
      if (name == "meta" || name == "br" || name == "link" || name == "img")
        return "void element <" + name + "> not self-closed";
      open.push_back(name);
    }
    i = k;
  }
  return open.empty() ? "" : "<" + open.back() + "> never closed";
}

TEST(ReportMarkupChecker, CatchesBrokenMarkup) {
  EXPECT_EQ(markup_problem("<p><b>x</b></p>"), "");
  EXPECT_NE(markup_problem("<p><b>x</p></b>"), "");
  EXPECT_NE(markup_problem("<p>x"), "");
  EXPECT_NE(markup_problem("<p>a < b</p>"), "");
  EXPECT_NE(markup_problem("<p>a & b</p>"), "");
  EXPECT_NE(markup_problem("<p title=\"<b>\">x</p>"), "");
}

TEST(ReportParse, ReadsResultsAndMetrics) {
  RunData run = sparc::report::load_run(
      make_run(kSparcResults, kSparcMetrics, "method: sparc\nreuse_threshold: 0.8\n"));
  EXPECT_EQ(run.method, "sparc");
  EXPECT_EQ(run.setting, "task-incremental");
  ASSERT_EQ(run.tasks.size(), 3u);
  EXPECT_EQ(run.tasks[2], kEvil);
  ASSERT_EQ(run.accuracy.size(), 3u);
  EXPECT_DOUBLE_EQ(run.accuracy[1][1], 0.90);
  EXPECT_DOUBLE_EQ(run.accuracy[2][0], 0.60);
  EXPECT_DOUBLE_EQ(run.zero_shot[2], 0.25);
  EXPECT_DOUBLE_EQ(run.bwt, -0.125);
  EXPECT_TRUE(std::isnan(run.routing_accuracy));  // null in the file
  EXPECT_EQ(run.trainable_params, 128);
  EXPECT_DOUBLE_EQ(run.reuse_threshold, 0.8);
  ASSERT_EQ(run.reuse.size(), 3u);
  EXPECT_EQ(run.reuse[1].reused_from, "nature");
  EXPECT_TRUE(run.reuse[2].orthogonal_capped);
  // Similarities in task order, whatever the key order of the JSON object.
  ASSERT_EQ(run.reuse[2].similarities.size(), 2u);
  EXPECT_EQ(run.reuse[2].similarities[0].first, "nature");
  EXPECT_DOUBLE_EQ(run.reuse[2].similarities[0].second, 0.287);
  ASSERT_EQ(run.loss_curves.size(), 3u);
  EXPECT_EQ(run.loss_curves[0].first, "nature");
  ASSERT_EQ(run.loss_curves[0].second.size(), 2u);
  EXPECT_EQ(run.loss_curves[0].second[1].step, 20);
  EXPECT_DOUBLE_EQ(run.loss_curves[0].second[1].loss, 1.5);
  EXPECT_DOUBLE_EQ(run.tokens_per_s, 2000.0);  // mean of each task's last value
}

// The trainer writes a NaN metric (e.g. FWT of a one-task run) as null: the
// page shows n/a rather than failing or printing "nan".
TEST(ReportParse, NullMetricShowsAsNotAvailable) {
  std::string results = kDomainResults;
  results.replace(results.find("\"fwt\": 0.1"), 10, "\"fwt\": null");
  RunData run = sparc::report::load_run(make_run(results));
  EXPECT_TRUE(std::isnan(run.fwt));
  const std::string html = sparc::report::render_html({run});
  EXPECT_NE(html.find("data-metric=\"fwt\">n/a<"), std::string::npos);
  EXPECT_EQ(html.find(">nan<"), std::string::npos);
  EXPECT_EQ(html.find(">-nan<"), std::string::npos);
}

// The message of the InputError `f` throws, or "" if it throws none.
template <class F>
std::string input_error(F f) {
  try {
    f();
  } catch (const sparc::InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ReportParse, ErrorsNameFileAndField) {
  RunData run;
  std::string e = input_error([&] {
    sparc::report::parse_results_json(R"({"method":"sparc","setting":"task-incremental"})",
                                      "r.json", run);
  });
  EXPECT_NE(e.find("r.json"), std::string::npos) << e;
  EXPECT_NE(e.find("'tasks'"), std::string::npos) << e;

  RunData run2;
  std::string bad_row = kSparcResults;
  bad_row.replace(bad_row.find("[0.70, 0.90, 0.30]"), 18, "[0.70, 0.90]");
  e = input_error([&] { sparc::report::parse_results_json(bad_row, "r.json", run2); });
  EXPECT_NE(e.find("accuracy_matrix[1]"), std::string::npos) << e;

  RunData run3;
  std::string bad_acc = kSparcResults;
  bad_acc.replace(bad_acc.find("\"acc\": 0.80"), 11, "\"acc\": \"high\"");
  e = input_error([&] { sparc::report::parse_results_json(bad_acc, "r.json", run3); });
  EXPECT_NE(e.find("'acc'"), std::string::npos) << e;

  RunData run4;
  e = input_error([&] {
    sparc::report::parse_metrics_jsonl(
        "{\"task\":\"a\",\"step\":1,\"loss\":1.0}\n{\"task\":\"a\",\"step\":2,\"loss\":\n",
        "m.jsonl", run4);
  });
  EXPECT_NE(e.find("m.jsonl:2"), std::string::npos) << e;

  e = input_error([] { sparc::report::load_run("/nonexistent/sparc-run"); });
  EXPECT_NE(e.find("/nonexistent/sparc-run"), std::string::npos) << e;
  const std::string empty = sparc::test::make_temp_dir();
  e = input_error([&] { sparc::report::load_run(empty); });
  EXPECT_NE(e.find(empty + "/results.json"), std::string::npos) << e;
}

class ReportPage : public ::testing::Test {
 protected:
  void SetUp() override {
    runs_.push_back(
        sparc::report::load_run(make_run(kSparcResults, kSparcMetrics, "reuse_threshold: 0.8\n")));
    runs_.push_back(sparc::report::load_run(make_run(kLoraResults)));
    // Given first on the command line, shown after the task-incremental runs.
    runs_.insert(runs_.begin(), sparc::report::load_run(make_run(kDomainResults)));
    html_ = sparc::report::render_html(runs_);
    const size_t ti = html_.find("<section id=\"setting-task-incremental\">");
    const size_t di = html_.find("<section id=\"setting-domain-incremental\">");
    EXPECT_NE(ti, std::string::npos);
    EXPECT_NE(di, std::string::npos);
    EXPECT_LT(ti, di);
    task_section_ = html_.substr(ti, di - ti);
    domain_section_ = html_.substr(di);
  }
  std::vector<RunData> runs_;
  std::string html_, task_section_, domain_section_;
};

TEST_F(ReportPage, IsWellFormed) {
  EXPECT_EQ(markup_problem(html_), "");
  EXPECT_EQ(html_.rfind("<!DOCTYPE html>", 0), 0u);
}

TEST_F(ReportPage, ParsesAsXmlWithXmllint) {
  if (std::system("command -v xmllint >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "xmllint absent (Debian libxml2-utils): the XML parse is not checked";
  const std::string path = sparc::test::make_temp_dir() + "/report.html";
  std::ofstream(path) << html_;
  EXPECT_EQ(std::system(("xmllint --noout '" + path + "'").c_str()), 0);
  // The check itself rejects broken markup.
  std::ofstream(path) << "<html><body><p>x</body></html>";
  EXPECT_NE(std::system(("xmllint --noout '" + path + "' 2>/dev/null").c_str()), 0);
}

TEST_F(ReportPage, OneHeatmapPerRunWithTheMatrixValues) {
  const auto maps = heatmaps(html_);
  ASSERT_EQ(maps.size(), 3u);
  // Task-incremental sparc, then lora, then domain-incremental sparc: the
  // zero-shot row, then the matrix row by row, in percent.
  EXPECT_EQ(cell_values(maps[0]),
            (std::vector<std::string>{"50.0", "50.0", "25.0", "80.0", "50.0", "25.0", "70.0",
                                      "90.0", "30.0", "60.0", "85.0", "95.0"}));
  EXPECT_EQ(cell_values(maps[1]),
            (std::vector<std::string>{"50.0", "50.0", "25.0", "90.0", "50.0", "50.0", "40.0",
                                      "80.0", "50.0", "30.0", "35.0", "70.0"}));
  EXPECT_EQ(cell_values(maps[2]),
            (std::vector<std::string>{"50.0", "50.0", "90.0", "60.0", "85.0", "80.0"}));
  // Each has a colour scale.
  for (const auto& m : maps) EXPECT_NE(m.find("class=\"legend\""), std::string::npos);
}

TEST_F(ReportPage, EscapesNamesTakenFromFiles) {
  EXPECT_EQ(html_.find("<script"), std::string::npos);
  EXPECT_EQ(html_.find("alert(\""), std::string::npos);
  EXPECT_NE(html_.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"),
            std::string::npos);
}

TEST_F(ReportPage, ReferencesNothingOutside) {
  EXPECT_EQ(html_.find("http://"), std::string::npos);
  EXPECT_EQ(html_.find("https://"), std::string::npos);
  EXPECT_EQ(html_.find("<script"), std::string::npos);
  EXPECT_EQ(html_.find("<link"), std::string::npos);
  EXPECT_EQ(html_.find("<img"), std::string::npos);
  EXPECT_EQ(html_.find("url(http"), std::string::npos);
  EXPECT_EQ(html_.find("@import"), std::string::npos);
}

// `data-metric="X">VALUE<` of the metrics row of `run` within `section`.
std::string metric(const std::string& section, const std::string& run, const std::string& name) {
  const size_t row = section.find("<tr data-run=\"" + run + "\">");
  if (row == std::string::npos) return "<no row>";
  const size_t end = section.find("</tr>", row);
  const std::string key = "data-metric=\"" + name + "\">";
  const size_t at = section.find(key, row);
  if (at == std::string::npos || at > end) return "<no cell>";
  const size_t v = at + key.size();
  return section.substr(v, section.find('<', v) - v);
}

TEST_F(ReportPage, MetricsTableMatchesResults) {
  EXPECT_EQ(metric(task_section_, "sparc", "acc"), "80.0");
  EXPECT_EQ(metric(task_section_, "sparc", "bwt"), "-12.5");
  EXPECT_EQ(metric(task_section_, "sparc", "fwt"), "+2.5");
  EXPECT_EQ(metric(task_section_, "sparc", "forgetting"), "12.5");
  EXPECT_EQ(metric(task_section_, "sparc", "retention"), "89.8");  // (75 + 94.44 + 100) / 3
  EXPECT_EQ(metric(task_section_, "sparc", "trainable"), "128");
  EXPECT_EQ(metric(task_section_, "sparc", "trainable_pct"), "0.0492");
  EXPECT_EQ(metric(task_section_, "sparc", "tokens_per_s"), "2,000");
  EXPECT_EQ(metric(task_section_, "lora", "acc"), "45.0");
  EXPECT_EQ(metric(task_section_, "lora", "bwt"), "-52.5");
  EXPECT_EQ(metric(task_section_, "lora", "trainable"), "4,096");
  EXPECT_EQ(metric(task_section_, "lora", "tokens_per_s"), "n/a");  // no metrics.jsonl
  EXPECT_EQ(metric(domain_section_, "sparc", "acc"), "82.5");
  EXPECT_EQ(metric(domain_section_, "sparc", "routing"), "87.5");
  // Routing accuracy belongs to the domain-incremental setting only.
  EXPECT_EQ(metric(task_section_, "sparc", "routing"), "<no cell>");
  EXPECT_EQ(task_section_.find("class=\"bars routing\""), std::string::npos);
  EXPECT_NE(domain_section_.find("class=\"bars routing\""), std::string::npos);
}

TEST_F(ReportPage, ChartsForForgettingLossAndReuse) {
  // Forgetting and BWT bars: one pair per run of the setting, values printed.
  const size_t bars = task_section_.find("<svg class=\"bars forgetting\"");
  ASSERT_NE(bars, std::string::npos);
  const std::string chart = task_section_.substr(bars, task_section_.find("</svg>", bars) - bars);
  auto bar_values = [&](const std::string& kind) {
    std::vector<std::string> out;
    const std::regex value("<text [^>]*data-bar=\"" + kind + "\"[^>]*>([^<]*)</text>");
    for (auto it = std::sregex_iterator(chart.begin(), chart.end(), value);
         it != std::sregex_iterator(); ++it)
      out.push_back((*it)[1]);
    return out;
  };
  EXPECT_EQ(bar_values("forgetting"), (std::vector<std::string>{"12.5", "52.5"}));
  EXPECT_EQ(bar_values("bwt"), (std::vector<std::string>{"-12.5", "-52.5"}));
  // Loss curves: one line per task of metrics.jsonl; lora has none.
  EXPECT_EQ(count(task_section_, "<polyline class=\"curve\""), 3u);
  EXPECT_NE(task_section_.find("No metrics.jsonl"), std::string::npos);
  // Reuse: sparc's decisions with their similarities; lora listed as having none.
  const size_t table = task_section_.find("<table class=\"reuse\" data-run=\"sparc\">");
  ASSERT_NE(table, std::string::npos);
  const std::string reuse =
      task_section_.substr(table, task_section_.find("</table>", table) - table);
  EXPECT_NE(reuse.find("reused from <code>nature</code>"), std::string::npos);
  EXPECT_NE(reuse.find(">0.912<"), std::string::npos);
  EXPECT_NE(reuse.find("orthogonal init (8 directions removed, capped)"), std::string::npos);
  EXPECT_NE(reuse.find(">0.287<"), std::string::npos);
  EXPECT_EQ(task_section_.find("<table class=\"reuse\" data-run=\"lora\">"), std::string::npos);
  EXPECT_NE(task_section_.find("reuse threshold 0.80"), std::string::npos);
}

TEST(ReportWrite, WritesThePageAndRejectsABadRun) {
  const std::string out = sparc::test::make_temp_dir() + "/r.html";
  sparc::report::write_report({make_run(kSparcResults, kSparcMetrics)}, out);
  std::ifstream f(out);
  const std::string page((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(heatmaps(page).size(), 1u);
  const std::string bad = make_run("{\"method\": \"sparc\"");
  const std::string e = input_error([&] { sparc::report::write_report({bad}, out + ".2"); });
  EXPECT_NE(e.find(bad + "/results.json"), std::string::npos) << e;
  EXPECT_FALSE(sparc::test::path_exists(out + ".2"));
}

// Runs are named by their path relative to the folder the page is written
// into, not by the absolute path they were made under.
TEST(ReportWrite, NamesRunsRelativeToTheReportFolder) {
  const std::string dir = sparc::test::make_temp_dir();
  const std::string run = dir + "/runs/x";
  std::filesystem::create_directories(run);
  std::ofstream(run + "/results.json") << kLoraResults;
  auto page_of = [](const std::string& path) {
    std::ifstream f(path);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };

  sparc::report::write_report({run}, dir + "/report.html");
  std::string page = page_of(dir + "/report.html");
  EXPECT_NE(page.find("<p class=\"meta\">1 run: <code>runs/x</code>. "), std::string::npos);
  EXPECT_NE(page.find("<td><code>runs/x</code></td></tr>"), std::string::npos);  // metrics table
  EXPECT_EQ(page.find(dir), std::string::npos);

  // A page in a sibling folder reaches the run through "..".
  std::filesystem::create_directories(dir + "/pages");
  sparc::report::write_report({run}, dir + "/pages/report.html");
  page = page_of(dir + "/pages/report.html");
  EXPECT_NE(page.find("1 run: <code>../runs/x</code>. "), std::string::npos);
  EXPECT_EQ(page.find(dir), std::string::npos);
}

}  // namespace
