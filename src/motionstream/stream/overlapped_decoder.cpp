#include "motionstream/stream/overlapped_decoder.h"

#include <torch/cuda.h>
#include <torch/utils.h>

#include <chrono>
#include <stdexcept>
#include <vector>

namespace ms {

namespace {
double host_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

OverlappedDecoder::OverlappedDecoder(LatentCodec& codec, const at::Device& device)
    : codec_(codec), decoder_(codec.vae()), stream_(device) {}

void OverlappedDecoder::submit(const at::Tensor& latents) {
  if (pending_) throw std::logic_error("OverlappedDecoder::submit: the previous chunk was not collected");
  if (latents.dim() != 5 || latents.size(0) != 1 || latents.size(1) != codec_.channels())
    throw std::invalid_argument("OverlappedDecoder::submit: latents must be [1, " + std::to_string(codec_.channels()) +
                                ", F, h, w], got " + std::to_string(latents.dim()) + " dims");
  torch::NoGradGuard no_grad;
  input_ = latents;
  const double t0 = host_seconds();
  stream_.wait_for_current();  // the chunk's latents are ready on the device before the decode reads them
  {
    gpu::Stream::Scope on_decode(stream_);
    start_ = stream_.mark(/*timed=*/true);
    const auto dtype = codec_.vae()->parameters().front().scalar_type();
    std::vector<at::Tensor> parts;  // [1, n_f, 3, H, W] per latent frame, in order
    for (int64_t f = 0; f < latents.size(2); ++f)
      parts.push_back(decoder_.push(codec_.denormalize_frame(latents.select(2, f)).to(dtype)));
    const at::Tensor frames = at::cat(parts, 1);
    const int64_t most = 4 * latents.size(2);
    if (!host_.defined() || host_.size(1) != most || host_.sizes().slice(2) != frames.sizes().slice(2) ||
        host_.scalar_type() != frames.scalar_type())
      host_ = gpu::host_buffer({1, most, frames.size(2), frames.size(3), frames.size(4)}, frames.scalar_type(),
                               latents.device());
    out_ = host_.narrow(1, 0, frames.size(1));
    out_.copy_(frames, /*non_blocking=*/stream_.is_cuda());
    done_ = stream_.mark(/*timed=*/true);
  }
  // Without the CUDA code a CUDA decode ran on the current stream: wait here so that the host time is the decode's.
  if (latents.is_cuda() && !stream_.is_cuda()) torch::cuda::synchronize();
  host_ms_ = (host_seconds() - t0) * 1e3;
  pending_ = true;
}

OverlappedDecoder::Frames OverlappedDecoder::collect() {
  if (!pending_) throw std::logic_error("OverlappedDecoder::collect: nothing was submitted");
  done_.wait_host();
  pending_ = false;
  input_ = at::Tensor();
  const double device_ms = done_.ms_since(start_);
  return {out_, device_ms >= 0 ? device_ms : host_ms_};
}

void OverlappedDecoder::reset() {
  if (pending_) collect();
  decoder_.reset();
}

}  // namespace ms
