// Checkpoint files (SPEC 4): the HDF5 round trip, the directory's atomic
// writes, checksums and retention, damaged files, the resume rules for
// changed configs, and the checkpoint section of the run config.
#include "ckpt/checkpoint.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "ckpt/verify.h"
#include "core/error.h"
#include "core/file.h"
#include "core/storage.h"
#include "test_util.h"

namespace sparc {
namespace {

// An adapter holding just its factors, as a checkpoint stores it.
std::shared_ptr<LoraAdapter> factors(torch::Tensor a, torch::Tensor b) {
  auto ad = std::make_shared<LoraAdapter>();
  ad->a = std::move(a);
  ad->b = std::move(b);
  return ad;
}

const std::string kConfig =
    "model:\n"
    "  path: m.bin\n"
    "lora: {rank: 4, alpha: 8, dropout: 0.1}\n"
    "tasks:\n"
    "  - name: a\n"
    "    train: a/train.jsonl\n"
    "    test: a/test.jsonl\n"
    "    verbalizer: {neg: bad, pos: good}\n"
    "  - name: b\n"
    "    train: b/train.jsonl\n"
    "    test: b/test.jsonl\n"
    "    verbalizer: {neg: bad, pos: good}\n";

RunConfig config(const std::vector<std::string>& overrides = {}) {
  return parse_run_config(kConfig, "x.yaml", "/cfg", overrides);
}

torch::Tensor values(std::vector<std::int64_t> shape, double start, torch::Dtype dtype = torch::kFloat32) {
  auto t = torch::arange(start, start + double(torch::empty(shape).numel()), torch::kFloat64);
  return t.div(7.0).sin().reshape(shape).to(dtype);
}

TaskRecord task(const std::string& name, double seed) {
  TaskRecord t;
  t.name = name;
  t.subspace.mu = values({64}, seed, torch::kFloat64);
  t.subspace.basis = values({16, 64}, seed + 1, torch::kFloat64);
  t.subspace.eigenvalues = values({16}, seed + 2, torch::kFloat64);
  t.subspace.explained_variance_ratio = 0.25 + seed / 1000;
  t.z = values({8, 16}, seed + 3);
  t.z_init = values({8, 16}, seed + 4);
  t.prompt = values({8, 64}, seed + 5);
  t.lora["layers.0.q"] = factors(values({4, 64}, seed + 6), values({64, 4}, seed + 7));
  t.lora["layers.1.v"] = factors(values({4, 64}, seed + 8), values({16, 4}, seed + 9));
  return t;
}

TrainingState state(std::int64_t global_step) {
  TrainingState s;
  s.config_yaml = to_yaml(config());
  s.model_fingerprint = 0xfedcba9876543210ULL;
  s.model_path = "/models/m.bin";
  s.arch = "llama";
  s.dim = 64, s.n_layers = 2, s.n_heads = 4, s.n_kv_heads = 1, s.vocab_size = 512;
  s.method = "sparc+lora";
  s.setting = "task-incremental";
  s.seed = 7;
  s.world_size = 2;
  s.tasks = {"a", "b"};
  s.task = 1;
  s.in_task = true;
  s.epoch = 1, s.step_in_epoch = 3, s.task_step = 7, s.task_total_steps = 12, s.sample_offset = 48;
  s.global_step = global_step;
  s.rng_streams = {{"dropout", 0x64726f70}, {"init", 0x696e6974}};
  s.subspaces = {task("a", 1), task("b", 2)};
  for (auto& t : s.subspaces) t.z = t.z_init = t.prompt = torch::Tensor(), t.lora.clear();
  s.library = {task("a", 10)};
  s.library[0].similarities = {};
  s.current = task("b", 20);
  s.current.reused_from = 0;
  s.current.similarities = {0.93};
  s.current.orth_directions = 3;
  s.current.orth_capped = true;
  s.current.orth_residual = 1e-3;
  for (const char* name : {"z", "lora.layers.0.q.a", "lora.layers.0.q.b"}) {
    CkptParam p;
    p.name = name;
    p.step = 7;
    p.exp_avg = values({8, 16}, 30);
    p.exp_avg_sq = values({8, 16}, 31).abs();
    s.params.push_back(p);
  }
  s.best_val = 0.75;
  s.bad_epochs = 1;
  s.best_params = {values({8, 16}, 40), values({4, 64}, 41), values({64, 4}, 42)};
  s.accuracy = {{0.5, 0.625}};
  s.zero_shot = {0.5, 0.25};
  s.test_sizes = {40, 80};
  s.ppl_before = 122.5;
  s.routed_right = 17;
  s.trainable_params = 1234;
  s.model_params = 260000;
  s.metric_history = {R"({"task":"a","step":10})", R"({"task":"b","step":5})"};
  return s;
}

void expect_same(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  EXPECT_EQ(a.scalar_type(), b.scalar_type()) << what;
  EXPECT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_TRUE(torch::equal(a, b)) << what;  // bit for bit
}

void expect_same(const TaskRecord& a, const TaskRecord& b) {
  EXPECT_EQ(a.name, b.name);
  expect_same(a.subspace.mu, b.subspace.mu, a.name + " mu");
  expect_same(a.subspace.basis, b.subspace.basis, a.name + " W");
  expect_same(a.subspace.eigenvalues, b.subspace.eigenvalues, a.name + " eigenvalues");
  EXPECT_EQ(a.subspace.explained_variance_ratio, b.subspace.explained_variance_ratio);
  expect_same(a.z, b.z, a.name + " Z");
  expect_same(a.z_init, b.z_init, a.name + " Z_init");
  expect_same(a.prompt, b.prompt, a.name + " prompt");
  ASSERT_EQ(a.lora.size(), b.lora.size());
  for (const auto& [m, l] : a.lora) {
    expect_same(l->a, b.lora.at(m)->a, m + " A");
    expect_same(l->b, b.lora.at(m)->b, m + " B");
  }
  EXPECT_EQ(a.reused_from, b.reused_from);
  EXPECT_EQ(a.similarities, b.similarities);
  EXPECT_EQ(a.orth_directions, b.orth_directions);
  EXPECT_EQ(a.orth_capped, b.orth_capped);
  EXPECT_EQ(a.orth_residual, b.orth_residual);
}

TEST(Checkpoint, FileRoundTripsEveryField) {
  const std::string path = test::make_temp_dir() + "/c.h5";
  const TrainingState s = state(19);
  write_checkpoint_file(path, s);
  const TrainingState r = read_checkpoint_file(path);
  EXPECT_EQ(r.config_yaml, s.config_yaml);
  EXPECT_EQ(r.model_fingerprint, s.model_fingerprint);
  EXPECT_EQ(r.model_path, s.model_path);
  EXPECT_EQ(r.arch, s.arch);
  EXPECT_EQ(std::tie(r.dim, r.n_layers, r.n_heads, r.n_kv_heads, r.vocab_size),
            std::tie(s.dim, s.n_layers, s.n_heads, s.n_kv_heads, s.vocab_size));
  EXPECT_EQ(r.method, s.method);
  EXPECT_EQ(r.setting, s.setting);
  EXPECT_EQ(r.seed, s.seed);
  EXPECT_EQ(r.world_size, s.world_size);
  EXPECT_EQ(r.tasks, s.tasks);
  EXPECT_EQ(std::tie(r.task, r.in_task, r.epoch, r.step_in_epoch, r.task_step, r.task_total_steps,
                     r.sample_offset, r.global_step),
            std::tie(s.task, s.in_task, s.epoch, s.step_in_epoch, s.task_step, s.task_total_steps,
                     s.sample_offset, s.global_step));
  EXPECT_EQ(r.rng_streams, s.rng_streams);
  ASSERT_EQ(r.subspaces.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    expect_same(r.subspaces[i].subspace.basis, s.subspaces[i].subspace.basis, "subspace W");
    expect_same(r.subspaces[i].subspace.mu, s.subspaces[i].subspace.mu, "subspace mu");
  }
  ASSERT_EQ(r.library.size(), 1u);
  expect_same(r.library[0], s.library[0]);
  expect_same(r.current, s.current);
  ASSERT_EQ(r.params.size(), s.params.size());
  for (size_t i = 0; i < s.params.size(); ++i) {
    EXPECT_EQ(r.params[i].name, s.params[i].name);  // in the optimizer's order, not alphabetical
    EXPECT_EQ(r.params[i].step, s.params[i].step);
    expect_same(r.params[i].exp_avg, s.params[i].exp_avg, "exp_avg");
    expect_same(r.params[i].exp_avg_sq, s.params[i].exp_avg_sq, "exp_avg_sq");
    expect_same(r.best_params[i], s.best_params[i], "early-stop best");
  }
  EXPECT_EQ(r.best_val, s.best_val);
  EXPECT_EQ(r.bad_epochs, s.bad_epochs);
  EXPECT_EQ(r.accuracy, s.accuracy);
  EXPECT_EQ(r.zero_shot, s.zero_shot);
  EXPECT_EQ(r.test_sizes, s.test_sizes);
  EXPECT_EQ(r.ppl_before, s.ppl_before);
  EXPECT_EQ(r.routed_right, s.routed_right);
  EXPECT_EQ(r.trainable_params, s.trainable_params);
  EXPECT_EQ(r.model_params, s.model_params);
  EXPECT_EQ(r.metric_history, s.metric_history);
}

TEST(Checkpoint, SharedAdaptersAndWeightsRoundTrip) {
  const std::string path = test::make_temp_dir() + "/c.h5";
  TrainingState s = state(3);
  s.in_task = false;
  s.shared_lora["layers.0.q"] = factors(values({4, 64}, 50), values({64, 4}, 51));
  s.weights = {{"layers.0.q.weight", values({64, 64}, 60)}, {"tok_embeddings", values({512, 64}, 61)}};
  write_checkpoint_file(path, s);
  const TrainingState r = read_checkpoint_file(path);
  EXPECT_FALSE(r.in_task);
  EXPECT_TRUE(r.params.empty());
  expect_same(r.shared_lora.at("layers.0.q")->a, s.shared_lora.at("layers.0.q")->a, "shared A");
  ASSERT_EQ(r.weights.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(r.weights[i].first, s.weights[i].first);
    expect_same(r.weights[i].second, s.weights[i].second, s.weights[i].first);
  }
}

std::string sha256sum_tool(const std::string& path) {
  std::FILE* p = ::popen(("sha256sum '" + path + "'").c_str(), "r");
  char buf[128] = {0};
  if (!p || !std::fgets(buf, sizeof buf, p)) return "";
  ::pclose(p);
  return std::string(buf).substr(0, 64);
}

TEST(CheckpointDir, AtomicFilesChecksumsLatestAndRetention) {
  const std::string dir = test::make_temp_dir() + "/ckpts";
  CheckpointDir d(dir, 2);
  d.save(state(2), false, 0);
  d.save(state(4), false, 0);
  d.save(state(4), true, 0);
  const std::string newest = d.save(state(6), false, 0);
  EXPECT_EQ(newest, dir + "/ckpt-00000006.h5");
  // The newest two, newest first; the end-of-task file sorts after its step.
  EXPECT_EQ(d.list(), (std::vector<std::string>{dir + "/ckpt-00000006.h5", dir + "/ckpt-00000004-end.h5"}));
  EXPECT_FALSE(file_exists(dir + "/ckpt-00000002.h5.sha256"));
  EXPECT_EQ(read_text_file(dir + "/latest"), "ckpt-00000006.h5\n");
  // The checksum file is sha256sum's format, with the tool's digest.
  const std::string sum = read_text_file(newest + ".sha256");
  EXPECT_EQ(sum, sha256sum_tool(newest) + "  ckpt-00000006.h5\n");
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  EXPECT_EQ(d.newest_valid(), newest);
  EXPECT_EQ(verify_checkpoint(newest), "");
}

TEST(CheckpointDir, DamagedNewestIsNamedAndSkipped) {
  for (const std::string damage : {"truncated", "flipped", "no checksum"}) {
    const std::string dir = test::make_temp_dir();
    CheckpointDir d(dir, 3);
    const std::string older = d.save(state(2), false, 0);
    const std::string newest = d.save(state(4), false, 0);
    const auto size = std::filesystem::file_size(newest);
    if (damage == "truncated") {
      std::filesystem::resize_file(newest, size / 2);
    } else if (damage == "flipped") {
      std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(std::streamoff(size / 2));
      char c = 0;
      f.read(&c, 1);
      c ^= 0x10;
      f.seekp(std::streamoff(size / 2));
      f.write(&c, 1);
    } else {
      std::remove((newest + ".sha256").c_str());
    }
    std::vector<std::string> skipped;
    EXPECT_EQ(d.newest_valid(&skipped), older) << damage;
    ASSERT_EQ(skipped.size(), 1u) << damage;
    EXPECT_NE(skipped[0].find(newest), std::string::npos) << skipped[0];
    EXPECT_NE(skipped[0].find(damage == "no checksum" ? "no checksum file" : "checksum mismatch"),
              std::string::npos)
        << skipped[0];
    // The older one still reads.
    EXPECT_EQ(read_checkpoint_file(older).global_step, 2);
  }
}

// Every entry of `dir` with the SHA-256 of its contents ("<dir>" for a directory).
std::map<std::string, std::string> contents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    out[e.path().filename().string()] = e.is_regular_file() ? sha256_file(e.path().string()) : "<dir>";
  return out;
}

// A write that fails at any stage (here: the checksum file or `latest`
// cannot be created, because a directory sits where its .tmp goes) removes
// what it created, leaves `latest` and the older checkpoints alone (no
// retention), and names the file, the reason and what `latest` still says.
TEST(CheckpointDir, FailedWriteLeavesThePreviousStateIntact) {
  for (const std::string blocked : {"ckpt-00000006.h5.sha256.tmp", "latest.tmp"}) {
    const std::string dir = test::make_temp_dir() + "/ckpts";
    CheckpointDir d(dir, 2);
    d.save(state(2), false, 0);
    d.save(state(4), false, 0);
    std::filesystem::create_directory(dir + "/" + blocked);
    const auto before = contents(dir);
    try {
      d.save(state(6), false, 0);
      ADD_FAILURE() << blocked << ": the write did not fail";
    } catch (const StorageError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(dir + "/" + blocked), std::string::npos) << what;
      EXPECT_NE(what.find("Is a directory"), std::string::npos) << what;
      EXPECT_NE(what.find("latest still names ckpt-00000004.h5"), std::string::npos) << what;
    }
    EXPECT_EQ(contents(dir), before) << blocked;
    EXPECT_EQ(d.newest_valid(), dir + "/ckpt-00000004.h5");
    EXPECT_EQ(verify_checkpoint(dir + "/ckpt-00000002.h5"), "");  // keep = 2, yet not removed
    // Once the obstacle is gone the next write succeeds and retention resumes.
    std::filesystem::remove(dir + "/" + blocked);
    d.save(state(8), false, 0);
    EXPECT_EQ(d.list(), (std::vector<std::string>{dir + "/ckpt-00000008.h5", dir + "/ckpt-00000004.h5"}));
  }
}

TEST(CheckpointDir, WriteIntoARegularFileIsAStorageError) {
  const std::string top = test::make_temp_dir();
  std::ofstream(top + "/plain") << "x";
  CheckpointDir d(top + "/plain/ckpts", 2);
  try {
    d.save(state(2), false, 0);
    ADD_FAILURE() << "the write did not fail";
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find(top + "/plain/ckpts: cannot create directory: Not a directory"),
              std::string::npos)
        << e.what();
  }
}

// The checks before libhdf5 sees a file, on bytes (fuzzed by fuzz_checkpoint).
TEST(CheckpointVerify, ChecksumFileFormat) {
  const std::string digest(64, 'a');
  EXPECT_EQ(parse_checksum_file(digest + "  ckpt-00000002.h5\n", "s"), digest);
  EXPECT_EQ(parse_checksum_file(std::string(64, 'A') + " *ckpt-00000002.h5\r\n", "s"), digest);
  EXPECT_EQ(parse_checksum_file(digest, "s"), digest);
  for (const std::string bad : {std::string(63, 'a'), std::string(63, 'a') + "g  x.h5",
                                digest + " x.h5", digest + "  ", digest + "\nmore\n", std::string()}) {
    EXPECT_THROW(parse_checksum_file(bad, "s"), InputError) << bad;
  }
}

TEST(CheckpointVerify, HeaderOfARealCheckpointAndDamagedOnes) {
  const std::string dir = test::make_temp_dir();
  const std::string path = CheckpointDir(dir, 1).save(state(2), false, 0);
  const std::string bytes = read_text_file(path);
  const auto* head = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const std::size_t n = std::min(bytes.size(), kHdf5HeaderBytes);
  EXPECT_EQ(check_hdf5_header(head, n, bytes.size()), "");
  EXPECT_NE(check_hdf5_header(head, n, bytes.size() - 1).find("truncated: its HDF5 superblock says " +
                                                              std::to_string(bytes.size()) + " bytes"),
            std::string::npos);
  EXPECT_NE(check_hdf5_header(head, 12, 12).find("truncated"), std::string::npos);
  std::string other = bytes.substr(0, n);
  other[1] = 'X';
  EXPECT_NE(check_hdf5_header(reinterpret_cast<const std::uint8_t*>(other.data()), n, bytes.size())
                .find("not an HDF5 file"),
            std::string::npos);
  // A truncated file given a matching checksum file (the digest alone cannot
  // tell) is still refused before libhdf5 opens it.
  std::filesystem::resize_file(path, bytes.size() / 2);
  std::ofstream(path + ".sha256") << sha256_file(path) << "  " << std::filesystem::path(path).filename().string() << "\n";
  EXPECT_NE(verify_checkpoint(path).find("truncated: its HDF5 superblock says"), std::string::npos)
      << verify_checkpoint(path);
}

TEST(ResumeRules, LoggingCadenceAndCommMayChange) {
  const RunConfig then = config();
  EXPECT_TRUE(resume_conflicts(config({"train.log_every=3", "checkpoint.every_steps=7",
                                       "checkpoint.keep=9", "comm.timeout_s=5",
                                       "checkpoint.on_write_error=continue",
                                       "checkpoint.dir=/elsewhere", "model.path=/moved/m.bin"}),
                               then, 1)
                  .empty());
}

// Issue 18: a CPU checkpoint resumes on a GPU with NCCL, and the other way round.
TEST(ResumeRules, DeviceAndBackendMayChange) {
  EXPECT_TRUE(resume_conflicts(config({"model.device=cuda", "comm.backend=nccl"}), config(), 1)
                  .empty());
  EXPECT_TRUE(resume_conflicts(config(), config({"model.device=cuda:1"}), 1).empty());
  EXPECT_TRUE(resume_conflicts(config({"model.device=auto"}), config(), 1).empty());
}

// Issue 20: recomputation trades memory for time with the same bits.
TEST(ResumeRules, RecomputeAndItsBudgetMayChange) {
  EXPECT_TRUE(resume_conflicts(config({"model.recompute=never", "model.activation_budget_mb=64",
                                       "model.sharding=layer"}),
                               config(), 1)
                  .empty());
}

TEST(ResumeRules, OtherChangesAreNamed) {
  const RunConfig then = config();
  auto p = resume_conflicts(config({"train.lr=0.5"}), then, 1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("train.lr: 0.5 now, 0.03 in the checkpoint"), std::string::npos) << p[0];
  p = resume_conflicts(config({"tasks.0.template='{text}!'"}), then, 1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("tasks[0] ('a')"), std::string::npos) << p[0];
  EXPECT_NE(p[0].find("already done"), std::string::npos) << p[0];
  p = resume_conflicts(config({"tasks.1.template='{text}!'"}), then, 1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("already measured"), std::string::npos) << p[0];
  p = resume_conflicts(config({"method=prompt", "seed=3"}), then, 0);
  EXPECT_EQ(p.size(), 2u);
}

TEST(CheckpointConfig, SectionParsesValidatesAndRoundTrips) {
  const RunConfig d = config();
  EXPECT_EQ(d.checkpoint.dir, "");
  EXPECT_EQ(d.checkpoint.every_steps, 100);
  EXPECT_EQ(d.checkpoint.keep, 3);
  EXPECT_EQ(d.checkpoint.on_write_error, "stop");
  const RunConfig c = config({"checkpoint.every_steps=0", "checkpoint.keep=1", "checkpoint.dir=/x/ck",
                              "checkpoint.on_write_error=continue"});
  EXPECT_EQ(c.checkpoint.every_steps, 0);
  EXPECT_EQ(c.checkpoint.keep, 1);
  EXPECT_EQ(c.checkpoint.dir, "/x/ck");
  EXPECT_EQ(c.checkpoint.on_write_error, "continue");
  EXPECT_EQ(parse_run_config(to_yaml(c), "y.yaml", ""), c);
  // A relative dir in the file resolves against the file's directory.
  EXPECT_EQ(parse_run_config(kConfig + "checkpoint: {dir: ck}\n", "x.yaml", "/cfg").checkpoint.dir,
            "/cfg/ck");
  try {
    config({"checkpoint.keep=0", "checkpoint.every_steps=-1", "checkpoint.often=1",
            "checkpoint.on_write_error=ignore"});
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 4u) << e.what();
    EXPECT_NE(std::string(e.what()).find("checkpoint.on_write_error: expected one of stop, continue; got 'ignore'"),
              std::string::npos)
        << e.what();
    const std::string all = e.what();
    EXPECT_NE(all.find("checkpoint.keep: expected an integer >= 1"), std::string::npos) << all;
    EXPECT_NE(all.find("checkpoint.every_steps: expected an integer >= 0"), std::string::npos) << all;
    EXPECT_NE(all.find("unknown key 'checkpoint.often'"), std::string::npos) << all;
  }
}

}  // namespace
}  // namespace sparc
