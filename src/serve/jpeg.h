// JPEG encoding of the frames sent to the browser (libjpeg-turbo's TurboJPEG API).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace ms::serve {

// One frame [3, H, W] in [0, 1] -> JPEG bytes (4:2:0, quality 1-100).
std::string encode_jpeg(const at::Tensor& frame, int quality = 85);

}  // namespace ms::serve
