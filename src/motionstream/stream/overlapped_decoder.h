// OverlappedDecoder: turns each chunk's latents into frames on a stream of its own, so that on a GPU the decode of
// chunk i runs while chunk i + 1 is being generated; the frames land in pinned host memory, copied asynchronously.
// On the CPU the same calls decode in order, inline (docs/ENGINE.md).
#pragma once

#include <ATen/ATen.h>

#include "motionstream/model/vae/latent_codec.h"
#include "motionstream/util/gpu.h"

namespace ms {

class OverlappedDecoder {
 public:
  // codec: normalised latents -> frames; its autoencoder already on `device`, in the dtype to decode in.
  OverlappedDecoder(LatentCodec& codec, const at::Device& device);

  // Queues the decode of one chunk [1, C, F, h, w] (normalised latents) behind the work queued so far on the current
  // stream, and returns (at once on a GPU). The chunk submitted before must have been collected.
  void submit(const at::Tensor& latents);

  struct Frames {
    at::Tensor frames;      // [1, n, 3, H, W] in [0, 1] on the host; valid until the next submit()
    double decode_ms = 0;   // the decode's device time on a GPU, its host time on the CPU
  };
  // Waits for the submitted chunk: its frames (n = 4F, minus the 3 leading frames for the stream's first chunk).
  Frames collect();
  bool pending() const { return pending_; }
  // A new stream: the decoder's per-layer memory is cleared (a pending chunk is collected and dropped first).
  void reset();

 private:
  LatentCodec& codec_;
  StreamingDecoder decoder_;
  gpu::Stream stream_;
  gpu::Mark start_, done_;
  at::Tensor input_;  // the submitted latents, kept alive until collected: the decode stream reads them
  at::Tensor host_;   // [1, 4F, 3, H, W] pinned frames, allocated at the first chunk
  at::Tensor out_;    // the collected part of host_
  double host_ms_ = 0;
  bool pending_ = false;
};

}  // namespace ms
