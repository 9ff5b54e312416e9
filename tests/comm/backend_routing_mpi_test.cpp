// Issue 18, under mpirun -np 2: the communicator comm.backend selects carries
// a training run's data plane (grad, pca, eval; gather when layer-sharded)
// and pretraining's (grad, eval) while MPI, the control plane, carries none
// of it. Both are recording doubles over MPI; the data one is registered as
// a test backend and opened by open_data_plane, as `sparc train` and
// `sparc pretrain` open theirs.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "comm/communicator.h"
#include "comm/communicator_factory.h"
#include "comm/mpi_test_main.h"
#include "comm/recording_communicator.h"
#include "config/pretrain_config.h"
#include "config/run_config.h"
#include "model/hf_model.h"
#include "model/model_config.h"
#include "model/weight_source.h"
#include "train/pretrain.h"
#include "train/trainer.h"

namespace sparc {
namespace {

Communicator* g_comm = nullptr;
test::RecordingCommunicator* g_data = nullptr;

// A random 2-block llama every rank reads (rank 0 writes it).
std::string tiny_model(const std::string& dir) {
  const std::string path = dir + "/model";
  if (g_comm->rank() == 0) {
    ModelConfig c;
    c.arch = Arch::kLlama;
    c.vocab_size = 512;
    c.dim = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 4;
    c.head_dim = 16;
    c.ffn_dim = 128;
    c.max_seq_len = 256;
    write_hf_llama_directory(*random_weights(c, 1), path, "f32");
  }
  g_comm->barrier(CommTag::kControl);
  return path;
}

void register_recording_backend() {
  register_test_backend("recording", [] {
    auto d = std::make_unique<test::RecordingCommunicator>("recording", make_mpi_communicator());
    g_data = d.get();
    return d;
  });
}

void train_with_recording_backend(const std::string& sharding) {
  register_recording_backend();
  const std::string dir = test::shared_temp_dir(*g_comm);
  RunConfig cfg = load_run_config(
      std::string(SPARC_SOURCE_DIR) + "/configs/tiny-task-incremental.yaml",
      {"model.path=" + tiny_model(dir), "model.tokenizer=bytes", "train.epochs=1",
       "train.max_train_examples=32", "eval.max_examples=20", "model.sharding=" + sharding});
  // The config accepts real backends only; a test name is set after parsing.
  cfg.comm.backend = "recording";
  DataPlane plane = open_data_plane(cfg.model.device, cfg.comm.backend, cfg.comm.timeout_s);
  ASSERT_EQ(plane.comm.get(), g_data);
  EXPECT_EQ(plane.device, "cpu");
  test::RecordingCommunicator control("control", make_mpi_communicator());
  {
    ContinualTrainer trainer(cfg, dir + "/run", plane.data_or(&control), &control);
    trainer.run();
  }
  for (CommTag tag : {CommTag::kGrad, CommTag::kPca, CommTag::kEval}) {
    EXPECT_GT(g_data->total_calls(tag), 0) << comm_tag_name(tag) << " not on the selected backend";
    EXPECT_EQ(control.total_calls(tag), 0) << comm_tag_name(tag) << " on the control plane";
  }
  EXPECT_EQ(control.total_calls(CommTag::kGather), 0);
  if (sharding == "layer")
    EXPECT_GT(g_data->total_calls(CommTag::kGather), 0) << "layer gathers not on the selected backend";
  else
    EXPECT_EQ(g_data->total_calls(CommTag::kGather), 0);
  register_test_backend("recording", nullptr);
  g_data = nullptr;
}

TEST(BackendRouting, TheSelectedBackendCarriesGradPcaAndEvalAndMpiNoneOfThem) {
  train_with_recording_backend("none");
}

TEST(BackendRouting, LayerShardedGathersGoThroughTheSelectedBackendToo) {
  train_with_recording_backend("layer");
}

TEST(BackendRouting, PretrainingSendsGradAndEvalThroughTheSelectedBackendAndNoControl) {
  register_recording_backend();
  const std::string dir = test::shared_temp_dir(*g_comm);
  if (g_comm->rank() == 0) {
    std::ofstream out(dir + "/corpus.txt");
    for (int i = 0; i < 200; ++i) out << "the cat " << i % 7 << " sat on the mat.\n";
  }
  g_comm->barrier(CommTag::kControl);
  PretrainConfig cfg = parse_pretrain_config(
      "seed: 1\nout: model\nmodel: {dim: 32, layers: 2, heads: 2, ffn: 64, max_seq_len: 64}\n"
      "data: {text: corpus.txt, val_fraction: 0.2}\n"
      "train: {steps: 4, batch_size: 4, seq_len: 16, log_every: 2, eval_every: 2}\n",
      dir + "/pretrain.yaml", dir);
  cfg.backend = "recording";  // after parsing, as above
  DataPlane plane = open_data_plane(cfg.device, cfg.backend, cfg.timeout_s);
  ASSERT_EQ(plane.comm.get(), g_data);
  test::RecordingCommunicator control("control", make_mpi_communicator());
  const PretrainResult r = pretrain(cfg, plane.data_or(&control), &control);
  EXPECT_EQ(r.steps, 4);
  EXPECT_FALSE(r.cached);
  // One grad all-reduce per step; validation at the start, at step 2 and the end.
  EXPECT_EQ(g_data->total_calls(CommTag::kGrad), 4);
  EXPECT_EQ(g_data->total_calls(CommTag::kEval), 3);
  EXPECT_EQ(g_data->total_calls(CommTag::kControl), 0) << "control traffic on the data plane";
  for (CommTag tag : {CommTag::kGrad, CommTag::kEval, CommTag::kPca, CommTag::kGather})
    EXPECT_EQ(control.total_calls(tag), 0) << comm_tag_name(tag) << " on the control plane";
  // The cache decision, the logged losses and the final barrier.
  EXPECT_GT(control.total_calls(CommTag::kControl), 0);
  register_test_backend("recording", nullptr);
  g_data = nullptr;
}

}  // namespace
}  // namespace sparc

int main(int argc, char** argv) {
  return sparc::test::run_mpi_tests(argc, argv, 120.0, &sparc::g_comm);
}
