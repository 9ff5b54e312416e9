// Issue 18, under mpirun -np 2: the communicator comm.backend selects carries
// a training run's data plane (grad, pca, eval; gather when layer-sharded)
// while MPI, the control plane, carries none of it. Both are recording
// doubles over MPI, registered as test backends: comm.backend=recording
// goes through the same factory as `sparc train`.
#include <gtest/gtest.h>

#include <string>

#include "comm/communicator.h"
#include "comm/communicator_factory.h"
#include "comm/mpi_test_main.h"
#include "comm/recording_communicator.h"
#include "config/run_config.h"
#include "model/hf_model.h"
#include "model/model_config.h"
#include "model/weight_source.h"
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

void train_with_recording_backend(const std::string& sharding) {
  register_test_backend("recording", [] {
    auto d = std::make_unique<test::RecordingCommunicator>("recording", make_mpi_communicator());
    g_data = d.get();
    return d;
  });
  const std::string dir = test::shared_temp_dir(*g_comm);
  RunConfig cfg = load_run_config(
      std::string(SPARC_SOURCE_DIR) + "/configs/tiny-task-incremental.yaml",
      {"model.path=" + tiny_model(dir), "model.tokenizer=bytes", "train.epochs=1",
       "train.max_train_examples=32", "eval.max_examples=20", "model.sharding=" + sharding});
  // The config accepts real backends only; a test name is set after parsing.
  cfg.comm.backend = "recording";
  auto data = make_communicator(cfg.comm.backend, /*model_on_cuda=*/false);
  ASSERT_EQ(data.get(), g_data);
  test::RecordingCommunicator control("control", make_mpi_communicator());
  {
    ContinualTrainer trainer(cfg, dir + "/run", data.get(), &control);
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

}  // namespace
}  // namespace sparc

int main(int argc, char** argv) {
  return sparc::test::run_mpi_tests(argc, argv, 120.0, &sparc::g_comm);
}
