#include "serve/jpeg.h"

#include <turbojpeg.h>

#include <memory>
#include <stdexcept>

namespace ms::serve {

std::string encode_jpeg(const at::Tensor& frame, int quality) {
  if (frame.dim() != 3 || frame.size(0) != 3)
    throw std::invalid_argument("encode_jpeg: frame must be [3, H, W], got " + std::to_string(frame.dim()) + " dims");
  if (quality < 1 || quality > 100) throw std::invalid_argument("encode_jpeg: quality must be in [1, 100]");
  const at::Tensor rgb =  // [H, W, 3] uint8, rows contiguous
      frame.detach().to(at::kCPU, at::kFloat).clamp(0.0, 1.0).mul(255.0).round().to(at::kByte).permute({1, 2, 0})
          .contiguous();
  const int H = static_cast<int>(rgb.size(0)), W = static_cast<int>(rgb.size(1));
  std::unique_ptr<void, int (*)(tjhandle)> handle(tjInitCompress(), tjDestroy);
  if (!handle) throw std::runtime_error("encode_jpeg: cannot create a TurboJPEG compressor");
  unsigned char* out = nullptr;
  unsigned long size = 0;
  if (tjCompress2(handle.get(), rgb.data_ptr<uint8_t>(), W, 0, H, TJPF_RGB, &out, &size, TJSAMP_420, quality,
                  TJFLAG_FASTDCT) != 0) {
    const std::string why = tjGetErrorStr2(handle.get());
    tjFree(out);
    throw std::runtime_error("encode_jpeg: " + why);
  }
  std::string bytes(reinterpret_cast<const char*>(out), size);
  tjFree(out);
  return bytes;
}

}  // namespace ms::serve
