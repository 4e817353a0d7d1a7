#include "motionstream/stream/chunk_buffers.h"

#include <sstream>
#include <stdexcept>
#include <string>

#include "motionstream/util/gpu.h"

namespace ms {

ChunkBuffers::ChunkBuffers(const DitConfig& config, int64_t chunk_frames, const std::vector<double>& steps,
                           int64_t latent_h, int64_t latent_w, const at::TensorOptions& options) {
  const int64_t K = static_cast<int64_t>(steps.size()), C = config.latent_channels, F = chunk_frames;
  if (K < 1) throw std::invalid_argument("ChunkBuffers: at least one denoising step is needed, got 0");
  const at::Device device = options.device();
  const bool host_is_device = device.is_cpu() && at::typeMetaToScalarType(options.dtype()) == at::kFloat;
  noise_host = gpu::host_buffer({K, 1, C, F, latent_h, latent_w}, at::kFloat, device);
  noise = host_is_device ? noise_host : at::empty(noise_host.sizes(), options);
  if (!device.is_cpu()) noise_device_f32_ = at::empty(noise_host.sizes(), options.dtype(at::kFloat));
  latents = at::zeros({1, C, F, latent_h, latent_w}, options);
  clean = at::zeros_like(latents);
  timesteps = at::zeros({K + 1, 1, F}, options.dtype(at::kFloat));  // float32 even in bf16 runs: t near 1000
  for (int64_t k = 0; k < K; ++k) timesteps[k].fill_(steps[static_cast<size_t>(k)]);
  if (config.image_condition) condition = at::zeros({1, 4 + C, F, latent_h, latent_w}, options);
  if (config.track_channels > 0) {
    tracks = at::zeros({1, config.packed_track_channels(), F, latent_h, latent_w}, options);
    tracks_zero_ = true;
    if (!device.is_cpu()) tracks_host_ = gpu::host_buffer(tracks.sizes(), tracks.scalar_type(), device);
  }
}

void ChunkBuffers::upload_noise() {
  if (noise.is_same(noise_host)) return;
  if (noise_device_f32_.defined()) {  // float32 over the bus as drawn, then the dtype on the device
    noise_device_f32_.copy_(noise_host, /*non_blocking=*/true);
    noise.copy_(noise_device_f32_);
  } else {
    noise.copy_(noise_host);
  }
}

void ChunkBuffers::write_tracks(const at::Tensor& raster) {
  if (!tracks.defined()) {
    if (raster.defined()) throw std::invalid_argument("ChunkBuffers: tracks given to a model without a track head");
    return;
  }
  if (!raster.defined()) {  // no tracks: the all-zero raster (the track head then adds its bias, as with none)
    if (!tracks_zero_) tracks.zero_();
    tracks_zero_ = true;
    return;
  }
  if (raster.sizes() != tracks.sizes()) {
    std::ostringstream msg;
    msg << "ChunkBuffers: track raster " << raster.sizes() << " does not fit the buffer " << tracks.sizes();
    throw std::invalid_argument(msg.str());
  }
  if (tracks_host_.defined()) {
    tracks_host_.copy_(raster);  // the dtype conversion on the host, then one asynchronous copy
    tracks.copy_(tracks_host_, /*non_blocking=*/true);
  } else {
    tracks.copy_(raster);
  }
  tracks_zero_ = false;
}

std::vector<at::Tensor> ChunkBuffers::all() const {
  std::vector<at::Tensor> out;
  for (const auto& t : {noise_host, noise, latents, clean, timesteps, condition, tracks, noise_device_f32_, tracks_host_})
    if (t.defined()) out.push_back(t);
  return out;
}

}  // namespace ms
