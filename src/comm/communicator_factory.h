// The one place that turns `comm.backend` (or bench's --backend) into a
// communicator (issue 18). MPI stays the bootstrap and the control plane
// (start-up agreement, arrival board, watchdog); the communicator made here
// carries the data-plane collectives: grad, pca, gather and eval.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace sparc {

class Communicator;

// "auto" is nccl when the model is on CUDA, else mpi; "mpi" and "nccl" are
// themselves; a name registered with register_test_backend() is itself.
// Throws InputError("comm.backend", ...) for anything else, and for nccl in a
// binary that cannot run it (see require_nccl()).
std::string resolve_backend(const std::string& backend, bool model_on_cuda);

// The communicator of resolve_backend(backend, model_on_cuda): mpi and nccl
// are collective over MPI_COMM_WORLD (nccl's device is the one
// place_rank_on_gpu() picks: the only visible GPU, else the local rank's).
std::unique_ptr<Communicator> make_communicator(const std::string& backend, bool model_on_cuda);

// Whether this binary's LibTorch was built with CUDA (independent of whether
// a GPU is visible).
bool libtorch_has_cuda();

// Throws InputError(where, ...) unless this binary can place tensors on a GPU:
// its LibTorch has CUDA and a GPU is visible. The message names what is
// missing and how to build against a CUDA LibTorch.
void require_cuda(const std::string& where);
// The same for the NCCL backend, which also needs SPARC_WITH_NCCL.
void require_nccl(const std::string& where);

// model.device as the run uses it: "auto" is "cuda" when this binary's
// LibTorch has CUDA and a GPU is visible, else "cpu"; anything else is itself.
std::string resolve_device(const std::string& device);

// A run's device and backend checked before its start-up agreement: "" when
// usable, else the one problem ("model.device: needs CUDA, ..." before any
// backend problem, since the backend follows the device).
std::string check_device_and_backend(const std::string& device, const std::string& backend);

// A run's data plane, opened after its start-up agreement (collective over
// MPI_COMM_WORLD): the device resolved ("auto" made cpu or cuda), this rank
// placed on its GPU when on CUDA, and comm.backend's communicator with the
// run's timeout. `comm` is null when the backend is MPI: the control
// communicator then carries the data too (one MPI communicator, not two).
struct DataPlane {
  std::string device;
  std::unique_ptr<Communicator> comm;
  // The communicator that carries grad, pca, gather and eval.
  Communicator* data_or(Communicator* control) const { return comm ? comm.get() : control; }
  DataPlane();
  DataPlane(DataPlane&&) noexcept;
  DataPlane& operator=(DataPlane&&) noexcept;
  ~DataPlane();  // Communicator is incomplete here
};
// Train, bench step and pretrain call it with check_device_and_backend()'s
// arguments once every rank agreed that check passed.
DataPlane open_data_plane(const std::string& device, const std::string& backend,
                          double timeout_s);

// Tests only: a backend name of their own whose factory returns a test
// double, so a test can see which tags reach the selected communicator.
// An empty factory removes the name. Not thread-safe; not for production use.
using CommunicatorFactory = std::function<std::unique_ptr<Communicator>()>;
void register_test_backend(const std::string& name, CommunicatorFactory factory);

}  // namespace sparc
