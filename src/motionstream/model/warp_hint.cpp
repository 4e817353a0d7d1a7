#include "motionstream/model/warp_hint.h"

#include <vector>

#include "motionstream/tracks/track_warp.h"

namespace ms {

at::Tensor warp_hint_latents(LatentCodec& codec, const at::Tensor& image, const TrackSet& tracks,
                             int64_t first_latent_frame, int64_t count) {
  TORCH_CHECK(image.dim() == 3 && image.size(0) == 3, "warp_hint_latents: image must be [3, H, W], got ", image.sizes());
  const int64_t H = image.size(1), W = image.size(2);
  const at::Tensor source = image.to(at::kCPU, at::kFloat);
  std::vector<at::Tensor> frames;  // one pixel frame per latent frame: 4l (frame 0 for l = 0)
  for (int64_t l = first_latent_frame; l < first_latent_frame + count; ++l)
    frames.push_back(warp_along_tracks(source, tracks, 4 * l, 1));  // [1, 3, H, W]
  // Each frame encoded as an image of its own: [count, 1, 3, H, W] -> [count, C, 1, h, w] -> [1, C, count, h, w]
  const at::Tensor images = at::cat(frames).view({count, 1, 3, H, W}).to(codec.vae()->parameters()[0].device());
  return codec.encode(images).squeeze(2).permute({1, 0, 2, 3}).unsqueeze(0);
}

void write_warp_hint(at::Tensor& condition, LatentCodec& codec, const at::Tensor& image, const TrackSet& tracks,
                     int64_t first_latent_frame) {
  const int64_t C = codec.channels(), F = condition.size(2);
  TORCH_CHECK(condition.dim() == 5 && condition.size(0) == 1 && condition.size(1) == 4 + C,
              "write_warp_hint: condition ", condition.sizes(), " is not [1, 4 + ", C, ", F, h, w]");
  if (tracks.points() == 0) return;
  const int64_t skip = first_latent_frame == 0 ? 1 : 0;  // latent frame 0 is the given image
  if (F - skip <= 0) return;
  const at::Tensor hint = warp_hint_latents(codec, image, tracks, first_latent_frame + skip, F - skip);
  TORCH_CHECK(hint.size(3) == condition.size(3) && hint.size(4) == condition.size(4), "write_warp_hint: image ",
              image.sizes(), " encodes to a ", hint.size(3), "x", hint.size(4), " latent grid, the condition's is ",
              condition.size(3), "x", condition.size(4));
  condition.narrow(1, 4, C).narrow(2, skip, F - skip).copy_(hint);
}

}  // namespace ms
