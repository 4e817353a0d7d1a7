#include "motionstream/train/world.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace ms::world {
namespace {

constexpr double kPi = 3.14159265358979323846;
using Rgb = std::array<double, 3>;

// ---------------------------------------------------------------------------------------------------------------
// Spec checks

[[noreturn]] void bad_field(const std::string& field, const std::string& value, const std::string& rule) {
  throw std::invalid_argument("WorldSpec." + field + " = " + value + ": " + rule);
}

std::string text(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

void check_probability(const std::string& field, double p) {
  if (!(p >= 0.0 && p <= 1.0)) bad_field(field, text(p), "must be a probability in [0, 1]");
}

// ---------------------------------------------------------------------------------------------------------------
// Vocabularies

struct NamedColour {
  const char* name;
  Rgb rgb;
};

const std::vector<NamedColour>& palette() {
  static const std::vector<NamedColour> colours = {
      {"red", {0.85, 0.12, 0.10}},    {"orange", {0.95, 0.55, 0.10}}, {"yellow", {0.95, 0.88, 0.15}},
      {"green", {0.18, 0.68, 0.22}},  {"cyan", {0.12, 0.78, 0.85}},   {"blue", {0.15, 0.30, 0.88}},
      {"purple", {0.52, 0.22, 0.72}}, {"pink", {0.95, 0.52, 0.70}},   {"brown", {0.50, 0.30, 0.12}},
      {"white", {0.94, 0.94, 0.92}},  {"grey", {0.50, 0.50, 0.50}},   {"black", {0.08, 0.08, 0.09}}};
  return colours;
}

std::string nearest_colour_name(const Rgb& c) {
  double best = 1e9;
  std::string name;
  for (const auto& entry : palette()) {
    double d = 0;
    for (int i = 0; i < 3; ++i) d += (c[i] - entry.rgb[i]) * (c[i] - entry.rgb[i]);
    if (d < best) best = d, name = entry.name;
  }
  return name;
}

// "a red circle", "an orange star"
std::string with_article(const std::string& words) {
  const bool vowel = !words.empty() && std::string("aeiou").find(words[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + words;
}

Rgb mix(const Rgb& a, const Rgb& b, double w) {
  return {a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w, a[2] + (b[2] - a[2]) * w};
}

at::Tensor rgb_tensor(const Rgb& c) { return at::tensor({c[0], c[1], c[2]}, at::kFloat); }  // [3]

// ---------------------------------------------------------------------------------------------------------------
// Randomness: every draw goes through one CPU generator, so a seed fixes the clip on any render device.

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(at::detail::createCPUGenerator(seed)) {}

  double uniform(double lo, double hi) {
    if (!(hi > lo)) return lo;
    return at::empty({1}, at::kDouble).uniform_(lo, hi, gen_).item<double>();
  }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return std::min(hi, lo + static_cast<int64_t>(std::floor(uniform(0.0, static_cast<double>(hi - lo + 1)))));
  }
  bool chance(double p) { return uniform(0.0, 1.0) < p; }
  double sign() { return chance(0.5) ? 1.0 : -1.0; }
  // A magnitude in [lo, hi) with a random sign; the two draws are sequenced so the result never depends on the
  // compiler's order of evaluating operands.
  double signed_uniform(double lo, double hi) {
    const double s = sign();
    return s * uniform(lo, hi);
  }
  at::Tensor uniform_tensor(at::IntArrayRef sizes, double lo = 0.0, double hi = 1.0) {
    return at::empty(sizes, at::kFloat).uniform_(lo, hi, gen_);
  }
  // Index drawn with probability proportional to its weight.
  size_t weighted(const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights) total += w;
    double r = uniform(0.0, total);
    for (size_t i = 0; i < weights.size(); ++i) {
      if (r < weights[i]) return i;
      r -= weights[i];
    }
    return weights.size() - 1;
  }
  const NamedColour& colour() {
    return palette()[static_cast<size_t>(integer(0, static_cast<int64_t>(palette().size()) - 1))];
  }
  Rgb jitter(const Rgb& c, double amount = 0.05) {
    Rgb out;
    for (int i = 0; i < 3; ++i) out[i] = std::clamp(c[i] + uniform(-amount, amount), 0.0, 1.0);
    return out;
  }

 private:
  at::Generator gen_;
};

// ---------------------------------------------------------------------------------------------------------------
// Per-frame affines [T, 2, 3] float64 (CPU): columns 0..1 the linear part, column 2 the translation.

at::Tensor clip_time(int64_t frames) {  // [T] in [0, 1]
  return frames > 1 ? at::linspace(0.0, 1.0, frames, at::kDouble) : at::zeros({1}, at::kDouble);
}

// x -> translate + scale * R(angle) x, all [T]
at::Tensor similarity(const at::Tensor& tx, const at::Tensor& ty, const at::Tensor& angle, const at::Tensor& scale) {
  const auto c = at::cos(angle) * scale, s = at::sin(angle) * scale;
  return at::stack({at::stack({c, -s, tx}, 1), at::stack({s, c, ty}, 1)}, 1);  // [T, 2, 3]
}

at::Tensor linear_part(const at::Tensor& m) { return m.narrow(2, 0, 2); }  // [T, 2, 2]
at::Tensor offset_part(const at::Tensor& m) { return m.select(2, 2); }     // [T, 2]

at::Tensor compose(const at::Tensor& outer, const at::Tensor& inner) {  // outer after inner
  const auto lin = at::matmul(linear_part(outer), linear_part(inner));
  const auto off = at::matmul(linear_part(outer), offset_part(inner).unsqueeze(2)).squeeze(2) + offset_part(outer);
  return at::cat({lin, off.unsqueeze(2)}, 2);
}

at::Tensor invert(const at::Tensor& m) {
  const auto a = m.select(2, 0).select(1, 0), b = m.select(2, 1).select(1, 0);
  const auto c = m.select(2, 0).select(1, 1), d = m.select(2, 1).select(1, 1);
  const auto det = a * d - b * c;
  const auto lin = at::stack({at::stack({d, -b}, 1), at::stack({-c, a}, 1)}, 1) / det.view({-1, 1, 1});
  const auto off = -at::matmul(lin, offset_part(m).unsqueeze(2)).squeeze(2);
  return at::cat({lin, off.unsqueeze(2)}, 2);
}

// points [T, N, 2] (or [1, N, 2] broadcast over T) -> [T, N, 2]
at::Tensor apply(const at::Tensor& m, const at::Tensor& points) {
  return at::matmul(points, linear_part(m).transpose(1, 2)) + offset_part(m).unsqueeze(1);
}

at::Tensor frame_scale(const at::Tensor& m) {  // [T]: how many screen pixels one local unit spans
  const auto lin = linear_part(m);
  const auto det = lin.select(1, 0).select(1, 0) * lin.select(1, 1).select(1, 1) -
                   lin.select(1, 0).select(1, 1) * lin.select(1, 1).select(1, 0);
  return det.abs().sqrt();
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes

at::Tensor length(const at::Tensor& x, const at::Tensor& y) { return (x * x + y * y).sqrt(); }

at::Tensor ellipse_distance(const Shape& s, const at::Tensor& x, const at::Tensor& y) {
  // Ellipse distance estimate k0 (k0 - 1) / k1 with k0 = |p / r|, k1 = |p / r^2|; its sign is exact.
  const double rx = s.half_width, ry = s.half_height, rmin = std::min(rx, ry);
  const auto k0 = length(x / rx, y / ry);
  const auto k1 = length(x / (rx * rx), y / (ry * ry));
  return (k0 - 1.0) * (k0 + 1e-6) / (k1 + 1e-6 / rmin);
}

at::Tensor rectangle_distance(const Shape& s, const at::Tensor& x, const at::Tensor& y) {
  const auto dx = x.abs() - s.half_width, dy = y.abs() - s.half_height;
  return length(dx.clamp_min(0), dy.clamp_min(0)) + at::maximum(dx, dy).clamp_max(0);
}

// Regular polygon, first corner straight up: the largest distance past any edge line (exact for convex shapes
// inside and along the edges, a slight underestimate near corners outside).
at::Tensor polygon_distance(const Shape& s, const at::Tensor& x, const at::Tensor& y) {
  const int64_t n = s.corners;
  const double apothem = s.half_width * std::cos(kPi / n);
  at::Tensor best;
  for (int64_t i = 0; i < n; ++i) {
    const double normal_angle = -kPi / 2 + 2 * kPi * (i + 0.5) / n;
    auto d = x * std::cos(normal_angle) + y * std::sin(normal_angle) - apothem;
    best = best.defined() ? at::maximum(best, d) : d;
  }
  return best;
}

// Star, first point straight up: fold the angle onto the half-wedge between a tip and the next inner corner; there
// the star is the triangle (centre, tip, inner corner), so the distance past the tip-inner edge line decides.
at::Tensor star_distance(const Shape& s, const at::Tensor& x, const at::Tensor& y) {
  const int64_t n = s.corners;
  const double sector = 2 * kPi / n, outer = s.half_width, inner = outer * s.inner_ratio;
  const auto angle = at::atan2(x, -y);                                     // 0 straight up
  const auto folded = (angle - sector * at::round(angle / sector)).abs();  // [0, sector / 2]
  const auto radius = length(x, y);
  const auto px = radius * at::cos(folded), py = radius * at::sin(folded);
  const double vx = inner * std::cos(sector / 2), vy = inner * std::sin(sector / 2);
  double nx = vy, ny = outer - vx;  // outward normal of the edge tip (outer, 0) -> (vx, vy)
  const double norm = std::hypot(nx, ny);
  nx /= norm, ny /= norm;
  return (px - outer) * nx + py * ny;
}

at::Tensor band_distance(const Shape& s, const at::Tensor& x, const at::Tensor& y) {
  const double k = 2 * kPi / s.wave_period;
  const auto centre = at::sin(x * k + s.wave_phase) * s.wave_amplitude;
  const auto slope = at::cos(x * k + s.wave_phase) * (s.wave_amplitude * k);
  return ((y - centre).abs() - s.half_height) / (1 + slope * slope).sqrt();
}

// The local box a finite shape fits in: {x0, y0, x1, y1}; infinite sides are +-1e9.
std::array<double, 4> shape_box(const Shape& s) {
  constexpr double kFar = 1e9;
  switch (s.kind) {
    case ShapeKind::kEverywhere: return {-kFar, -kFar, kFar, kFar};
    case ShapeKind::kBand: {
      const double h = s.half_height + std::abs(s.wave_amplitude);
      return {-kFar, -h, kFar, h};
    }
    case ShapeKind::kCircle:
    case ShapeKind::kPolygon:
    case ShapeKind::kStar: return {-s.half_width, -s.half_width, s.half_width, s.half_width};
    default: return {-s.half_width, -s.half_height, s.half_width, s.half_height};
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Textures: built on the CPU at about one texel per screen pixel, over the part of the layer the camera can see.

struct TextureGrid {
  at::Tensor x, y;  // [h, w] local coordinates of the texel centres
};

TextureGrid texel_centres(const Fill& box, int64_t h, int64_t w) {
  const auto xs = box.x0 + (at::arange(w, at::kFloat) + 0.5) * ((box.x1 - box.x0) / w);
  const auto ys = box.y0 + (at::arange(h, at::kFloat) + 0.5) * ((box.y1 - box.y0) / h);
  return {xs.view({1, w}).expand({h, w}), ys.view({h, 1}).expand({h, w})};
}

at::Tensor blend(const Rgb& a, const Rgb& b, const at::Tensor& weight) {  // weight [h, w] -> [3, h, w]
  const auto ca = rgb_tensor(a).view({3, 1, 1}), cb = rgb_tensor(b).view({3, 1, 1});
  return ca + (cb - ca) * weight.unsqueeze(0);
}

at::Tensor smoothstep(const at::Tensor& v) {
  const auto c = v.clamp(0, 1);
  return c * c * (3 - 2 * c);
}

// Fractal value noise in [0, 1]: random lattices (coarse to fine) upsampled bicubically and summed. [h, w]
at::Tensor fractal_noise(Random& rng, int64_t h, int64_t w, double cells_across, int64_t octaves = 4) {
  auto sum = at::zeros({1, 1, h, w}, at::kFloat);
  double amplitude = 1.0, cells = std::max(1.0, cells_across);
  for (int64_t o = 0; o < octaves; ++o) {
    const auto ch = static_cast<int64_t>(std::ceil(cells * h / std::max(h, w))) + 2;
    const auto cw = static_cast<int64_t>(std::ceil(cells * w / std::max(h, w))) + 2;
    const auto lattice = rng.uniform_tensor({1, 1, ch, cw});
    sum += at::upsample_bicubic2d(lattice, {h, w}, true, c10::nullopt, c10::nullopt) * amplitude;
    amplitude *= 0.5, cells *= 2.0;
  }
  const auto lo = sum.min(), hi = sum.max();
  return ((sum - lo) / (hi - lo + 1e-6)).view({h, w});
}

at::Tensor noise_texture(Random& rng, const Rgb& a, const Rgb& b, int64_t h, int64_t w, double feature_px) {
  const double cells = std::max(h, w) / feature_px;
  return blend(a, b, smoothstep(fractal_noise(rng, h, w, cells) * 1.6 - 0.3));
}

at::Tensor linear_gradient(Random& rng, const TextureGrid& g, const Rgb& a, const Rgb& b) {
  const double angle = rng.uniform(0, 2 * kPi);
  const auto proj = g.x * std::cos(angle) + g.y * std::sin(angle);
  const auto lo = proj.min(), hi = proj.max();
  return blend(a, b, (proj - lo) / (hi - lo + 1e-6));
}

// A lit-from-one-side look for objects: brightest at an off-centre highlight, darker toward the rim.
at::Tensor radial_gradient(Random& rng, const TextureGrid& g, const Rgb& base, double radius) {
  const double hx = rng.uniform(-0.4, 0.4) * radius, hy = rng.uniform(-0.4, 0.4) * radius;
  const auto r = length(g.x - hx, g.y - hy) / (1.6 * radius);
  return blend(mix(base, {1, 1, 1}, 0.35), mix(base, {0, 0, 0}, 0.45), r.clamp(0, 1));
}

at::Tensor stripes(Random& rng, const TextureGrid& g, const Rgb& a, const Rgb& b, double period, bool checks) {
  const double angle = rng.uniform(0, kPi), phase = rng.uniform(0, 2 * kPi), sharp = rng.uniform(2.0, 10.0);
  const auto u = g.x * std::cos(angle) + g.y * std::sin(angle);
  auto wave = at::sin(u * (2 * kPi / period) + phase);
  if (checks) {
    const auto v = -g.x * std::sin(angle) + g.y * std::cos(angle);
    wave = wave * at::sin(v * (2 * kPi / period) + phase);
  }
  return blend(a, b, (wave * sharp * 0.5 + 0.5).clamp(0, 1));
}

// A crop of a photo, slightly warped by a smooth random displacement, optionally mirrored; grey photos are tinted.
at::Tensor photo_texture(Random& rng, const Photo& photo, int64_t h, int64_t w, double coverage, double warp) {
  const auto ph = static_cast<double>(photo.image.size(1)), pw = static_cast<double>(photo.image.size(2));
  const double aspect = static_cast<double>(w) / h;
  const double crop_w = std::min(pw, ph * aspect) * coverage, crop_h = crop_w / aspect;
  const double left = rng.uniform(0, pw - crop_w), top = rng.uniform(0, ph - crop_h);
  const bool mirror = rng.chance(0.5);
  auto gx = (at::arange(w, at::kFloat) + 0.5) / w, gy = (at::arange(h, at::kFloat) + 0.5) / h;
  if (mirror) gx = 1 - gx;
  auto px = (left + gx * crop_w).view({1, w}).expand({h, w}), py = (top + gy * crop_h).view({h, 1}).expand({h, w});
  if (warp > 0) {
    px = px + (fractal_noise(rng, h, w, 3.0, 2) - 0.5) * (2 * warp * crop_w);
    py = py + (fractal_noise(rng, h, w, 3.0, 2) - 0.5) * (2 * warp * crop_h);
  }
  const auto grid = at::stack({px * (2.0 / pw) - 1, py * (2.0 / ph) - 1}, 2).unsqueeze(0);  // [1, h, w, 2]
  auto out = at::grid_sampler(photo.image.unsqueeze(0), grid, 0, 1, false).squeeze(0);      // [3, h, w]
  if (photo.grey) out = out * rgb_tensor(mix(rng.colour().rgb, {1, 1, 1}, 0.45)).view({3, 1, 1}) * 1.15;
  return out.clamp(0, 1);
}

Rgb mean_colour(const at::Tensor& texture) {
  const auto m = texture.mean({1, 2});
  return {m[0].item<double>(), m[1].item<double>(), m[2].item<double>()};
}

// ---------------------------------------------------------------------------------------------------------------
// Camera: a pan shared by all depths (the camera turning), a sideways move and a dolly that act as 1/depth
// (parallax), and a roll; all about the frame centre.

constexpr double kReferenceDepth = 2.0;  // the depth at which the sideways move and dolly act at full size

struct Camera {
  bool moves = false;
  double pan_x = 0, pan_y = 0, slide_x = 0, slide_y = 0, log_zoom = 0, roll = 0;
  bool eased = false;
};

Camera random_camera(Random& rng, const WorldSpec& spec) {
  Camera cam;
  if (!rng.chance(spec.camera_motion)) return cam;
  cam.moves = true;
  const double size = static_cast<double>(std::min(spec.width, spec.height));
  bool any = false;
  if (rng.chance(0.55)) {
    const double a = rng.uniform(0, 2 * kPi), m = rng.uniform(0.05, 0.25) * size;
    cam.pan_x = m * std::cos(a), cam.pan_y = m * std::sin(a) * 0.6, any = true;
  }
  if (rng.chance(0.5)) {
    const double a = rng.uniform(0, 2 * kPi), m = rng.uniform(0.05, 0.2) * size;
    cam.slide_x = m * std::cos(a), cam.slide_y = m * std::sin(a) * 0.5, any = true;
  }
  if (rng.chance(0.4)) cam.log_zoom = rng.signed_uniform(0.08, 0.3), any = true;
  if (rng.chance(0.3)) cam.roll = rng.signed_uniform(0.03, 0.12), any = true;
  if (!any) cam.pan_x = rng.signed_uniform(0.08, 0.25) * size;
  cam.eased = rng.chance(0.5);
  return cam;
}

// [T, 2, 3]: screen before camera -> screen after camera, for a layer at `depth`.
at::Tensor camera_motion(const Camera& cam, const Scene& scene, double depth) {
  const auto u = clip_time(scene.frames);
  const auto s = cam.eased ? smoothstep(u) : u;
  const double k = kReferenceDepth / depth;
  const double cx = scene.width / 2.0, cy = scene.height / 2.0;
  const auto angle = s * cam.roll, scale = at::exp(s * (cam.log_zoom * k));
  const auto ca = at::cos(angle) * scale, sa = at::sin(angle) * scale;
  // x' = c + shift + S R (x - c)
  const auto tx = cx + s * (cam.pan_x + cam.slide_x * k) - (ca * cx - sa * cy);
  const auto ty = cy + s * (cam.pan_y + cam.slide_y * k) - (sa * cx + ca * cy);
  return similarity(tx, ty, angle, scale);
}

// ---------------------------------------------------------------------------------------------------------------
// Object motion

struct ObjectPath {
  at::Tensor motion;   // [T, 2, 3] before the camera
  std::string phrase;  // "moves left", "stays still", ...
};

std::string direction_words(double dx, double dy) {
  static const char* names[8] = {"right", "down and to the right", "down", "down and to the left",
                                 "left",  "up and to the left",    "up",   "up and to the right"};
  const double angle = std::atan2(dy, dx);  // y points down, so positive angles turn clockwise on screen
  const auto sector = static_cast<int64_t>(std::lround(angle / (kPi / 4)));
  return names[((sector % 8) + 8) % 8];
}

struct Point {
  double x = 0, y = 0;
};

// Start and end points: wholly inside the frame, entering from outside, or leaving it.
std::pair<Point, Point> endpoints(Random& rng, const WorldSpec& spec, double radius) {
  const double w = static_cast<double>(spec.width), h = static_cast<double>(spec.height);
  auto inside = [&] { return Point{rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h}; };
  auto outside = [&] {
    const int64_t side = rng.integer(0, 3);
    const double along = rng.uniform(0.2, 0.8), gap = radius * 1.3;
    if (side == 0) return Point{-gap, along * h};
    if (side == 1) return Point{w + gap, along * h};
    if (side == 2) return Point{along * w, -gap};
    return Point{along * w, h + gap};
  };
  const size_t mode = rng.weighted({0.68, 0.16, 0.16});
  if (mode == 1) return {outside(), inside()};
  if (mode == 2) return {inside(), outside()};
  const Point start = inside();
  if (rng.chance(0.08)) return {start, start};  // holds its place
  const double a = rng.uniform(0, 2 * kPi), m = rng.uniform(0.15, 0.6) * std::min(w, h);
  return {start, Point{start.x + m * std::cos(a), start.y + m * std::sin(a)}};
}

// Positions [T] along one of: straight, accelerating, decelerating, stopping midway, curved (bezier), wavy.
std::pair<at::Tensor, at::Tensor> trajectory(Random& rng, const Point& p0, const Point& p1, int64_t frames) {
  const auto u = clip_time(frames);
  const double dx = p1.x - p0.x, dy = p1.y - p0.y, dist = std::hypot(dx, dy);
  const double nx = dist > 0 ? -dy / dist : 0, ny = dist > 0 ? dx / dist : 0;  // unit normal
  switch (rng.weighted({0.3, 0.12, 0.1, 0.13, 0.2, 0.15})) {
    case 1: return {p0.x + dx * u * u, p0.y + dy * u * u};
    case 2: {
      const auto s = 1 - (1 - u) * (1 - u);
      return {p0.x + dx * s, p0.y + dy * s};
    }
    case 3: {
      const auto v = (u / rng.uniform(0.35, 0.7)).clamp_max(1.0);
      const auto s = 1 - (1 - v) * (1 - v);
      return {p0.x + dx * s, p0.y + dy * s};
    }
    case 4: {
      const double bend = rng.signed_uniform(0.2, 0.6) * dist;
      const double cx = (p0.x + p1.x) / 2 + nx * bend, cy = (p0.y + p1.y) / 2 + ny * bend;
      const auto a = (1 - u) * (1 - u), b = 2 * u * (1 - u), c = u * u;
      return {a * p0.x + b * cx + c * p1.x, a * p0.y + b * cy + c * p1.y};
    }
    case 5: {
      const double half_waves = static_cast<double>(rng.integer(1, 3));
      const auto wave = at::sin(u * (kPi * half_waves)) * (rng.signed_uniform(0.08, 0.25) * dist);
      return {p0.x + dx * u + nx * wave, p0.y + dy * u + ny * wave};
    }
    default: return {p0.x + dx * u, p0.y + dy * u};
  }
}

ObjectPath random_object_path(Random& rng, const WorldSpec& spec, double radius) {
  const auto [p0, p1] = endpoints(rng, spec, radius);
  const auto [x, y] = trajectory(rng, p0, p1, spec.frames);
  const auto u = clip_time(spec.frames);
  const bool spins = rng.chance(0.35), grows = rng.chance(0.25);
  const double spin = spins ? rng.signed_uniform(0.4, 2.5) : 0.0;
  const double growth = grows ? rng.signed_uniform(0.15, 0.45) : 0.0;
  const auto angle = rng.uniform(-kPi, kPi) + u * spin;
  const auto scale = at::exp(u * growth);
  ObjectPath path{similarity(x, y, angle, scale), ""};
  const double dx = p1.x - p0.x, dy = p1.y - p0.y;
  if (std::hypot(dx, dy) < 0.06 * std::min(spec.width, spec.height))
    path.phrase = spins ? "spins in place" : "stays still";
  else
    path.phrase = "moves " + direction_words(dx, dy);
  return path;
}

// ---------------------------------------------------------------------------------------------------------------
// Layers: shape + camera-aware texture box + fill

// The local box the camera ever shows of this layer (the four frame corners pulled back through every frame's
// motion), clipped to the shape's own box, plus a margin. The texture covers it, so no edge is ever seen.
Fill visible_box(const Layer& layer, const Scene& scene) {
  const double w = static_cast<double>(scene.width), h = static_cast<double>(scene.height);
  const auto corners = at::tensor({0.0, 0.0, w, 0.0, 0.0, h, w, h}, at::kDouble).view({1, 4, 2});
  const auto local = apply(invert(layer.motion), corners);  // [T, 4, 2]
  const auto flat = local.reshape({-1, 2});
  const auto lo = std::get<0>(flat.min(0)), hi = std::get<0>(flat.max(0));
  const auto sb = shape_box(layer.shape);
  constexpr double kMargin = 3.0;
  Fill box;
  box.x0 = std::max(lo[0].item<double>(), sb[0]) - kMargin, box.y0 = std::max(lo[1].item<double>(), sb[1]) - kMargin;
  box.x1 = std::min(hi[0].item<double>(), sb[2]) + kMargin, box.y1 = std::min(hi[1].item<double>(), sb[3]) + kMargin;
  if (box.x1 <= box.x0 || box.y1 <= box.y0) {  // never on screen: any finite box will do
    box.x0 = std::max(sb[0], -w);
    box.y0 = std::max(sb[1], -h);
    box.x1 = std::min(sb[2], w);
    box.y1 = std::min(sb[3], h);
  }
  return box;
}

std::pair<int64_t, int64_t> texture_size(const Fill& box, const at::Tensor& motion) {
  constexpr int64_t kMaxSide = 512;
  const double density = std::max(1.0, frame_scale(motion).max().item<double>());
  auto side = [&](double extent) {
    return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(extent * density)), 2, kMaxSide);
  };
  return {side(box.y1 - box.y0), side(box.x1 - box.x0)};
}

enum class FillKind { kFlat, kLinearGradient, kRadialGradient, kNoise, kStripes, kChecks, kPhoto };

struct FillChoice {
  FillKind kind = FillKind::kFlat;
  Rgb a{}, b{};  // main and second colour
  const Photo* photo = nullptr;
  double coverage = 1.0, warp = 0.0, period = 16.0, feature = 16.0;
};

// Fills the layer's texture over the box the camera sees; returns the colour that names it.
Rgb paint(Random& rng, Layer& layer, const Scene& scene, const FillChoice& choice) {
  if (choice.kind == FillKind::kFlat) {
    layer.fill = Fill::flat(choice.a[0], choice.a[1], choice.a[2]);
    return choice.a;
  }
  Fill fill = visible_box(layer, scene);
  const auto [h, w] = texture_size(fill, layer.motion);
  const auto grid = texel_centres(fill, h, w);
  const double radius = std::max(layer.shape.half_width, layer.shape.half_height);
  switch (choice.kind) {
    case FillKind::kLinearGradient: fill.texture = linear_gradient(rng, grid, choice.a, choice.b); break;
    case FillKind::kRadialGradient: fill.texture = radial_gradient(rng, grid, choice.a, radius); break;
    case FillKind::kNoise: fill.texture = noise_texture(rng, choice.a, choice.b, h, w, choice.feature); break;
    case FillKind::kStripes: fill.texture = stripes(rng, grid, choice.a, choice.b, choice.period, false); break;
    case FillKind::kChecks: fill.texture = stripes(rng, grid, choice.a, choice.b, choice.period, true); break;
    default: fill.texture = photo_texture(rng, *choice.photo, h, w, choice.coverage, choice.warp); break;
  }
  layer.fill = fill;
  return choice.kind == FillKind::kPhoto ? mean_colour(fill.texture) : choice.a;
}

const Photo* random_photo(Random& rng, const PhotoBank* photos) {
  if (photos == nullptr || photos->size() == 0) return nullptr;
  return &photos->photo(rng.integer(0, photos->size() - 1));
}

// Two palette colours with different names.
std::pair<NamedColour, NamedColour> colour_pair(Random& rng) {
  const NamedColour first = rng.colour();
  NamedColour second = rng.colour();
  while (std::string(second.name) == first.name) second = rng.colour();
  return {NamedColour{first.name, rng.jitter(first.rgb)}, NamedColour{second.name, rng.jitter(second.rgb)}};
}

std::string add_background(Random& rng, Scene& scene, const WorldSpec& spec, const Camera& cam,
                           const PhotoBank* photos) {
  Layer layer;
  layer.depth = rng.uniform(8.0, 12.0);
  const auto centre = similarity(at::full({scene.frames}, scene.width / 2.0, at::kDouble),
                                 at::full({scene.frames}, scene.height / 2.0, at::kDouble),
                                 at::zeros({scene.frames}, at::kDouble), at::ones({scene.frames}, at::kDouble));
  layer.motion = compose(camera_motion(cam, scene, layer.depth), centre);
  const auto [a, b] = colour_pair(rng);
  FillChoice choice{FillKind::kNoise, a.rgb, b.rgb};
  std::string words;
  const Photo* photo = rng.chance(spec.photo_background) ? random_photo(rng, photos) : nullptr;
  if (photo != nullptr) {
    choice.kind = FillKind::kPhoto, choice.photo = photo;
    choice.coverage = rng.uniform(0.5, 1.0), choice.warp = rng.uniform(0.0, 0.03);
    words = "a photo of " + photo->description;
  } else {
    const size_t kind = rng.weighted({0.35, 0.25, 0.22, 0.18});
    const std::string pair = std::string(a.name) + " and " + b.name;
    choice.feature = rng.uniform(8.0, 40.0), choice.period = rng.uniform(6.0, 28.0);
    static const FillKind kinds[4] = {FillKind::kNoise, FillKind::kLinearGradient, FillKind::kStripes,
                                      FillKind::kChecks};
    const std::string names[4] = {pair + " cloudy texture", std::string(a.name) + " to " + b.name + " gradient",
                                  pair + " stripes", pair + " checkerboard"};
    choice.kind = kinds[kind];
    words = kind == 2 ? names[kind] : with_article(names[kind]);
  }
  paint(rng, layer, scene, choice);
  scene.layers.push_back(std::move(layer));
  return words;
}

// A mid-ground band, hill or wall between the background and the objects, so camera moves show parallax.
std::string add_midground(Random& rng, Scene& scene, const Camera& cam, const PhotoBank* photos) {
  const double w = static_cast<double>(scene.width), h = static_cast<double>(scene.height);
  const double size = std::min(w, h);
  Layer layer;
  layer.depth = rng.uniform(4.0, 6.0);
  double cx = w / 2, cy = h / 2, angle = 0;
  std::string noun;
  switch (rng.weighted({0.45, 0.3, 0.25})) {
    case 0:
      layer.shape.kind = ShapeKind::kBand;
      layer.shape.half_height = rng.uniform(0.1, 0.25) * size;
      layer.shape.wave_amplitude = rng.uniform(0.0, 0.08) * size;
      layer.shape.wave_period = rng.uniform(0.5, 1.5) * w;
      layer.shape.wave_phase = rng.uniform(0, 2 * kPi);
      cy = rng.uniform(0.25, 0.8) * h, angle = rng.uniform(-0.3, 0.3), noun = "band";
      break;
    case 1: {
      const double r = rng.uniform(0.6, 1.2) * size;
      layer.shape = {ShapeKind::kCircle, r, r};
      cx = rng.uniform(0.0, 1.0) * w, cy = h + r - rng.uniform(0.2, 0.5) * h, noun = "hill";
      break;
    }
    default: {
      layer.shape = {ShapeKind::kRectangle, 0.5 * w, 2.0 * h};
      const double side = rng.sign();
      cx = w / 2 + side * (0.5 * w + rng.uniform(-0.35, -0.1) * w), angle = rng.uniform(-0.15, 0.15), noun = "wall";
    }
  }
  const auto u = clip_time(scene.frames);
  const double drift = rng.chance(0.3) ? rng.signed_uniform(0.05, 0.2) * w : 0.0;
  layer.motion = compose(camera_motion(cam, scene, layer.depth),
                         similarity(cx + u * drift, at::full_like(u, cy), at::full_like(u, angle), at::ones_like(u)));
  const auto [a, b] = colour_pair(rng);
  FillChoice choice{rng.chance(0.6) ? FillKind::kNoise : FillKind::kLinearGradient, a.rgb, b.rgb};
  choice.feature = rng.uniform(6.0, 24.0);
  const Photo* photo = rng.chance(0.25) ? random_photo(rng, photos) : nullptr;
  if (photo != nullptr) choice.kind = FillKind::kPhoto, choice.photo = photo, choice.coverage = rng.uniform(0.3, 0.8);
  const Rgb named = paint(rng, layer, scene, choice);
  scene.layers.push_back(std::move(layer));
  const std::string colours = photo != nullptr ? nearest_colour_name(named) : std::string(a.name) + " and " + b.name;
  return " with " + with_article(colours + " " + noun);
}

struct ShapeChoice {
  Shape shape;
  std::string noun;
};

ShapeChoice random_shape(Random& rng, double r) {
  switch (rng.integer(0, 7)) {
    case 0: return {{ShapeKind::kCircle, r, r}, "circle"};
    case 1: return {{ShapeKind::kEllipse, r * 1.15, r * rng.uniform(0.45, 0.75)}, "ellipse"};
    case 2: return {{ShapeKind::kRectangle, r * 0.85, r * 0.85}, "square"};
    case 3: return {{ShapeKind::kRectangle, r * 1.1, r * rng.uniform(0.4, 0.7)}, "rectangle"};
    case 4: return {{ShapeKind::kPolygon, r * 1.2, r * 1.2, 3}, "triangle"};
    case 5: return {{ShapeKind::kPolygon, r * 1.05, r * 1.05, 5}, "pentagon"};
    case 6: return {{ShapeKind::kPolygon, r, r, 6}, "hexagon"};
    default: return {{ShapeKind::kStar, r * 1.25, r * 1.25, rng.integer(5, 6), rng.uniform(0.4, 0.55)}, "star"};
  }
}

FillChoice random_object_fill(Random& rng, const PhotoBank* photos, double radius) {
  const NamedColour main = rng.colour();
  FillChoice choice{FillKind::kFlat, rng.jitter(main.rgb), {}};
  const NamedColour other = rng.colour();
  choice.b = rng.jitter(other.rgb);
  const bool have_photos = photos != nullptr && photos->size() > 0;
  switch (rng.weighted({0.32, 0.2, 0.14, 0.14, have_photos ? 0.2 : 0.0})) {
    case 1: choice.kind = FillKind::kRadialGradient; break;
    case 2: choice.kind = FillKind::kNoise, choice.b = mix(choice.a, choice.b, 0.45); break;
    case 3:  // the second colour leans toward the first, so the caption's colour name stays right
      choice.kind = FillKind::kStripes, choice.b = mix(choice.a, choice.b, 0.5);
      choice.period = rng.uniform(0.25, 0.6) * radius;
      break;
    case 4: choice.kind = FillKind::kPhoto, choice.photo = random_photo(rng, photos); break;
    default: break;
  }
  choice.feature = std::max(3.0, radius * rng.uniform(0.2, 0.5));
  choice.coverage = rng.uniform(0.25, 0.6);
  return choice;
}

// Objects at distinct depths in [1, 3] (stratified, so no two share one), appended back to front later.
std::vector<std::string> add_objects(Random& rng, Scene& scene, const WorldSpec& spec, const Camera& cam,
                                     const PhotoBank* photos, std::vector<size_t>& object_layers) {
  const int64_t count = rng.integer(spec.min_objects, spec.max_objects);
  std::vector<double> depths;
  for (int64_t i = 0; i < count; ++i) depths.push_back(1.0 + 2.0 * (i + rng.uniform(0.1, 0.9)) / count);
  std::vector<std::string> phrases, used;
  const double size = static_cast<double>(std::min(spec.width, spec.height));
  for (int64_t i = 0; i < count; ++i) {
    const double radius = rng.uniform(0.09, 0.2) * size;
    auto shape = random_shape(rng, radius);
    const auto path = random_object_path(rng, spec, radius);
    Layer layer;
    layer.shape = shape.shape;
    layer.depth = depths[static_cast<size_t>(rng.integer(0, static_cast<int64_t>(depths.size()) - 1))];
    depths.erase(std::find(depths.begin(), depths.end(), layer.depth));
    layer.motion = compose(camera_motion(cam, scene, layer.depth), path.motion);
    std::string name;
    for (int attempt = 0; attempt < 8; ++attempt) {  // distinct names, so the caption picks out each object
      const Rgb named = paint(rng, layer, scene, random_object_fill(rng, photos, radius));
      name = nearest_colour_name(named) + " " + shape.noun;
      if (std::find(used.begin(), used.end(), name) == used.end()) break;
    }
    used.push_back(name);
    layer.name = name;
    phrases.push_back(with_article(name) + " " + path.phrase);
    object_layers.push_back(scene.layers.size());
    scene.layers.push_back(std::move(layer));
  }
  return phrases;
}

// Sorts layers back to front (the background stays first) and remaps the object indices.
void sort_layers(Scene& scene, std::vector<size_t>& object_layers) {
  std::vector<size_t> order(scene.layers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scene.layers[a].depth > scene.layers[b].depth; });
  std::vector<Layer> sorted;
  std::vector<size_t> where(order.size());
  for (size_t i = 0; i < order.size(); ++i) sorted.push_back(std::move(scene.layers[order[i]])), where[order[i]] = i;
  scene.layers = std::move(sorted);
  for (auto& index : object_layers) index = where[index];
}

Event random_event(Random& rng, const Scene& scene, const std::vector<size_t>& object_layers) {
  Event event;
  event.start = rng.uniform(0.05, 0.5);
  event.end = std::min(1.0, event.start + rng.uniform(0.25, 0.5));
  const bool can_recolour = !object_layers.empty();
  switch (rng.weighted({1, 1, 1, 1, can_recolour ? 1.5 : 0.0})) {
    case 0:
      event.kind = EventKind::kLightDims;
      event.strength = rng.uniform(0.35, 0.6);
      event.phrase = "the light dims";
      break;
    case 1:
      event.kind = EventKind::kLightBrightens;
      event.strength = rng.uniform(0.35, 0.55);
      event.phrase = "the light brightens";
      break;
    case 2: event.kind = EventKind::kFogRollsIn, event.phrase = "fog rolls in"; break;
    case 3: event.kind = EventKind::kFogClears, event.phrase = "fog clears"; break;
    default: {
      event.kind = EventKind::kRecolour;
      event.layer = static_cast<int64_t>(object_layers[static_cast<size_t>(rng.integer(0, object_layers.size() - 1))]);
      const std::string& name = scene.layers[static_cast<size_t>(event.layer)].name;
      NamedColour target = rng.colour();
      while (name.rfind(std::string(target.name) + " ", 0) == 0) target = rng.colour();
      event.colour = target.rgb, event.strength = 0.85;
      event.phrase = "the " + name + " turns " + target.name;
    }
  }
  if (event.kind == EventKind::kFogRollsIn || event.kind == EventKind::kFogClears) {
    const double grey = rng.uniform(0.7, 0.85);
    event.colour = rng.jitter({grey, grey, grey}, 0.04), event.strength = rng.uniform(0.5, 0.75);
  }
  return event;
}

// object_points per object, each at least a pixel inside its shape on frame 0 where the shape allows.
void add_object_queries(Random& rng, Scene& scene, const std::vector<size_t>& object_layers, int64_t per_object,
                        std::vector<at::Tensor>& xy, std::vector<at::Tensor>& layer_of) {
  if (per_object <= 0) return;
  for (size_t index : object_layers) {
    const Layer& layer = scene.layers[index];
    const auto box = shape_box(layer.shape);
    const int64_t candidates = 16 * per_object;
    const auto u = rng.uniform_tensor({candidates, 2}).to(at::kDouble);
    const auto local =
        at::stack({box[0] + u.select(1, 0) * (box[2] - box[0]), box[1] + u.select(1, 1) * (box[3] - box[1])}, 1);
    const auto d = signed_distance(layer.shape, local);
    // Deeply inside first, then the rest by depth: a shape too thin for the margin still gets its points.
    const auto order = at::argsort(d.clamp_min(-1.0) + at::arange(candidates, at::kDouble) * 1e-9);
    const auto chosen = local.index_select(0, order.narrow(0, 0, per_object));
    xy.push_back(apply(layer.motion.narrow(0, 0, 1), chosen.unsqueeze(0)).squeeze(0));
    layer_of.push_back(at::full({per_object}, static_cast<int64_t>(index), at::kLong));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

void check_scene(const Scene& scene) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("Scene: " + what); };
  if (scene.width <= 0 || scene.height <= 0 || scene.frames <= 0) bad("width, height and frames must be positive");
  if (scene.layers.empty()) bad("has no layers");
  for (size_t i = 0; i < scene.layers.size(); ++i) {
    const Layer& l = scene.layers[i];
    const std::string name = "layer " + std::to_string(i);
    if (!l.motion.defined() || l.motion.dim() != 3 || l.motion.size(0) != scene.frames || l.motion.size(1) != 2 ||
        l.motion.size(2) != 3)
      bad(name + " motion must be [frames, 2, 3]");
    if (!l.fill.texture.defined() || l.fill.texture.dim() != 3 || l.fill.texture.size(0) != 3)
      bad(name + " fill texture must be [3, h, w]");
    if (!(l.fill.x1 > l.fill.x0 && l.fill.y1 > l.fill.y0)) bad(name + " fill box is empty");
    if (i > 0 && !(l.depth < scene.layers[i - 1].depth)) bad(name + " is not nearer than the layer before it");
    if ((l.shape.kind == ShapeKind::kPolygon || l.shape.kind == ShapeKind::kStar) && l.shape.corners < 3)
      bad(name + " polygon/star needs at least 3 corners");
  }
  if (!scene.query_xy.defined() || scene.query_xy.dim() != 2 || scene.query_xy.size(1) != 2)
    bad("query_xy must be [N, 2]");
  if (!scene.query_layer.defined() || scene.query_layer.dim() != 1 ||
      scene.query_layer.size(0) != scene.query_xy.size(0))
    bad("query_layer must be [N]");
  if (scene.query_layer.numel() > 0 &&
      (scene.query_layer.min().item<int64_t>() < -1 ||
       scene.query_layer.max().item<int64_t>() >= static_cast<int64_t>(scene.layers.size())))
    bad("query_layer holds a layer index out of range");
  if (scene.event.kind == EventKind::kRecolour &&
      (scene.event.layer < 0 || scene.event.layer >= static_cast<int64_t>(scene.layers.size())))
    bad("recolour event names a layer out of range");
}

// [L, ...] stacked per-layer "inside the shape" at local positions that each layer computes from `points`.
// points: [T or 1, N, 2] screen positions -> [L, T, N] bool
at::Tensor inside_each_layer(const Scene& scene, const std::vector<at::Tensor>& inverse, const at::Tensor& points) {
  std::vector<at::Tensor> inside;
  for (size_t l = 0; l < scene.layers.size(); ++l) {
    const auto local = apply(inverse[l].narrow(0, 0, points.size(0) == 1 ? 1 : inverse[l].size(0)), points);
    inside.push_back(signed_distance(scene.layers[l].shape, local) < 0);
  }
  return at::stack(inside);
}

// Exact tracks (float64 on the CPU): positions, visibility and the layer of every query.
std::pair<TrackSet, at::Tensor> compute_tracks(const Scene& scene) {
  const auto L = static_cast<int64_t>(scene.layers.size());
  const int64_t N = scene.query_xy.size(0), T = scene.frames;
  std::vector<at::Tensor> inverse;
  for (const auto& layer : scene.layers) inverse.push_back(invert(layer.motion));
  const auto p0 = scene.query_xy.to(at::kDouble).unsqueeze(0);  // [1, N, 2]

  // The top-most covering layer on frame 0 for queries that do not name one (the background if none covers).
  const auto inside0 = inside_each_layer(scene, inverse, p0).squeeze(1);  // [L, N]
  const auto rank = at::arange(L, at::kLong).view({L, 1});
  const auto top = at::where(inside0, rank, at::zeros_like(rank)).amax(0);  // [N]
  auto layer_of = scene.query_layer.to(at::kLong);
  layer_of = at::where(layer_of < 0, top, layer_of);

  // x(t) = A_L(t) * (A_L(0)^-1 * x(0)) for each query's own layer.
  auto xy = at::zeros({T, N, 2}, at::kDouble);
  auto own_inside = at::zeros({N}, at::kBool);
  for (int64_t l = 0; l < L; ++l) {
    const auto mine = (layer_of == l);
    const auto local = apply(inverse[l].narrow(0, 0, 1), p0);  // [1, N, 2]
    xy = at::where(mine.view({1, N, 1}), apply(scene.layers[l].motion, local), xy);
    own_inside = at::where(mine, (signed_distance(scene.layers[l].shape, local.squeeze(0)) < 0), own_inside);
  }

  const auto x = xy.select(2, 0), y = xy.select(2, 1);
  const auto in_frame = (x >= 0) & (x < scene.width) & (y >= 0) & (y < scene.height);  // [T, N]
  const auto covers = inside_each_layer(scene, inverse, xy);                           // [L, T, N]
  const auto nearer = rank > layer_of.view({1, N});                                    // [L, N]
  const auto occluded = (covers & nearer.unsqueeze(1)).any(0);                         // [T, N]

  TrackSet tracks;
  tracks.xy = xy.to(at::kFloat);
  tracks.visible = in_frame & own_inside.view({1, N}) & ~occluded;
  tracks.fps = scene.fps, tracks.width = scene.width, tracks.height = scene.height;
  return {tracks, layer_of};
}

at::Tensor event_ramp(const Event& event, int64_t frames) {  // [T] in [0, 1]
  const auto u = clip_time(frames);
  const double span = std::max(1e-6, event.end - event.start);
  return smoothstep((u - event.start) / span);
}

// The pixel rectangle a layer can touch in any frame: its shape's box carried through every frame's motion, plus
// the one-pixel soft edge, clipped to the frame. Drawing only there saves most of the work for small objects.
struct PixelBox {
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) x [y0, y1)
  bool empty() const { return x1 <= x0 || y1 <= y0; }
};

PixelBox pixel_box(const Layer& layer, const Scene& scene) {
  const PixelBox frame{0, 0, scene.width, scene.height};
  if (layer.shape.kind == ShapeKind::kEverywhere || layer.shape.kind == ShapeKind::kBand) return frame;
  const auto b = shape_box(layer.shape);
  const auto corners = at::tensor({b[0], b[1], b[2], b[1], b[0], b[3], b[2], b[3]}, at::kDouble).view({1, 4, 2});
  const auto screen = apply(layer.motion, corners).reshape({-1, 2});  // [T * 4, 2]
  const auto lo = std::get<0>(screen.min(0)), hi = std::get<0>(screen.max(0));
  auto clip = [](double v, int64_t limit) { return std::clamp<int64_t>(static_cast<int64_t>(v), 0, limit); };
  return {
      clip(std::floor(lo[0].item<double>() - 1), scene.width), clip(std::floor(lo[1].item<double>() - 1), scene.height),
      clip(std::ceil(hi[0].item<double>() + 1), scene.width), clip(std::ceil(hi[1].item<double>() + 1), scene.height)};
}

at::Tensor pixel_centres(const PixelBox& box, const at::TensorOptions& opts) {  // [1, h * w, 2]
  const int64_t h = box.y1 - box.y0, w = box.x1 - box.x0;
  const auto xs = at::arange(box.x0, box.x1, opts) + 0.5, ys = at::arange(box.y0, box.y1, opts) + 0.5;
  return at::stack({xs.view({1, w}).expand({h, w}), ys.view({h, 1}).expand({h, w})}, 2).view({1, h * w, 2});
}

// One layer's colour at each pixel of the box in every frame: [T, 3, h, w] (or [1, 3, 1, 1] for a flat fill).
at::Tensor layer_colour(const Layer& layer, const at::Tensor& local, const PixelBox& box,
                        const at::TensorOptions& opts) {
  const auto& tex = layer.fill.texture;
  if (tex.size(1) == 1 && tex.size(2) == 1) return tex.to(opts).view({1, 3, 1, 1});
  const int64_t T = local.size(0), h = box.y1 - box.y0, w = box.x1 - box.x0;
  const auto origin = at::tensor({layer.fill.x0, layer.fill.y0}, opts).view({1, 1, 2});
  const auto extent = at::tensor({layer.fill.x1 - layer.fill.x0, layer.fill.y1 - layer.fill.y0}, opts).view({1, 1, 2});
  const auto grid = ((local - origin) / extent * 2 - 1).view({T, h, w, 2});
  const auto texture = tex.to(opts).unsqueeze(0).expand({T, 3, tex.size(1), tex.size(2)});
  return at::grid_sampler(texture, grid, 0, 1, false);  // bilinear, border
}

// A layer that holds still (no camera move, no own motion) is drawn once and shared by every frame.
at::Tensor distinct_motion(const at::Tensor& motion) {  // [T or 1, 2, 3]
  const auto first = motion.narrow(0, 0, 1);
  return at::equal(motion, first.expand_as(motion)) ? first : motion;
}

void draw_layer(at::Tensor& video, const Scene& scene, size_t index, const at::TensorOptions& opts) {
  const Layer& layer = scene.layers[index];
  const PixelBox box = pixel_box(layer, scene);
  if (box.empty()) return;
  const int64_t T = scene.frames, h = box.y1 - box.y0, w = box.x1 - box.x0;
  const auto motion = distinct_motion(layer.motion);                            // [F, 2, 3], F = T or 1
  const auto local = apply(invert(motion).to(opts), pixel_centres(box, opts));  // [F, h * w, 2]
  auto colour = layer_colour(layer, local, box, opts);                          // [F or 1, 3, h, w]
  if (scene.event.kind == EventKind::kRecolour && scene.event.layer == static_cast<int64_t>(index)) {
    const auto weight = (event_ramp(scene.event, T) * scene.event.strength).to(opts).view({T, 1, 1, 1});
    colour = at::lerp(colour, rgb_tensor(scene.event.colour).to(opts).view({1, 3, 1, 1}), weight);
  }
  auto target = video.narrow(2, box.y0, h).narrow(3, box.x0, w);  // [T, 3, h, w] view
  if (layer.shape.kind == ShapeKind::kEverywhere) {
    target.copy_(colour.expand_as(target));
    return;
  }
  // Soft edge one screen pixel wide: alpha 0.5 exactly on the shape's edge, so alpha > 0.5 <=> inside.
  const auto scale = frame_scale(motion).to(opts).view({-1, 1});
  auto alpha = signed_distance(layer.shape, local).mul_(scale).neg_().add_(0.5).clamp_(0, 1);  // [F, h * w]
  target.lerp_(colour.expand_as(target), alpha.view({-1, 1, h, w}));
}

at::Tensor render_video(const Scene& scene, const at::Device& device) {
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  auto video = at::zeros({scene.frames, 3, scene.height, scene.width}, opts);
  for (size_t l = 0; l < scene.layers.size(); ++l) draw_layer(video, scene, l, opts);
  return video;
}

void apply_event(at::Tensor& video, const Event& event) {
  if (event.kind == EventKind::kNone || event.kind == EventKind::kRecolour) return;
  const int64_t T = video.size(0);
  const auto s = event_ramp(event, T).to(video.options()).view({T, 1, 1, 1});
  switch (event.kind) {
    case EventKind::kLightDims: video.mul_(1 - s * event.strength); break;
    case EventKind::kLightBrightens: video.mul_(1 - (1 - s) * event.strength); break;  // starts dim
    default: {
      const auto fog = rgb_tensor(event.colour).to(video.options()).view({1, 3, 1, 1});
      const auto amount = (event.kind == EventKind::kFogRollsIn ? s : 1 - s) * event.strength;
      video.lerp_(fog.expand_as(video), amount);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

void WorldSpec::validate() const {
  if (width <= 0 || width % 16 != 0) bad_field("width", std::to_string(width), "must be a positive multiple of 16");
  if (height <= 0 || height % 16 != 0) bad_field("height", std::to_string(height), "must be a positive multiple of 16");
  if (frames < 1 || (frames - 1) % 4 != 0) bad_field("frames", std::to_string(frames), "must be 1 + 4k");
  if (!(fps > 0) || !std::isfinite(fps)) bad_field("fps", text(fps), "must be positive");
  if (min_objects < 0) bad_field("min_objects", std::to_string(min_objects), "must be >= 0");
  if (max_objects < min_objects)
    bad_field("max_objects", std::to_string(max_objects),
              "must be >= min_objects (" + std::to_string(min_objects) + ")");
  if (max_objects > 16) bad_field("max_objects", std::to_string(max_objects), "must be <= 16");
  if (grid < 0) bad_field("grid", std::to_string(grid), "must be >= 0");
  if (object_points < 0) bad_field("object_points", std::to_string(object_points), "must be >= 0");
  check_probability("camera_motion", camera_motion);
  check_probability("photo_background", photo_background);
}

Fill Fill::flat(double r, double g, double b) {
  Fill fill;
  fill.texture = at::tensor({r, g, b}, at::kFloat).view({3, 1, 1});
  return fill;
}

at::Tensor signed_distance(const Shape& shape, const at::Tensor& local) {
  const auto x = local.select(-1, 0), y = local.select(-1, 1);
  switch (shape.kind) {
    case ShapeKind::kEverywhere: return at::full_like(x, -1e6);
    case ShapeKind::kCircle: return length(x, y) - shape.half_width;
    case ShapeKind::kEllipse: return ellipse_distance(shape, x, y);
    case ShapeKind::kRectangle: return rectangle_distance(shape, x, y);
    case ShapeKind::kPolygon: return polygon_distance(shape, x, y);
    case ShapeKind::kStar: return star_distance(shape, x, y);
    case ShapeKind::kBand: return band_distance(shape, x, y);
  }
  throw std::invalid_argument("signed_distance: unknown shape kind");
}

at::Tensor translating(int64_t frames, double x0, double y0, double dx, double dy) {
  const auto t = at::arange(frames, at::kDouble);
  return similarity(x0 + t * dx, y0 + t * dy, at::zeros_like(t), at::ones_like(t));
}

void add_grid_queries(Scene& scene, int64_t grid) {
  at::Tensor xy = at::zeros({0, 2}, at::kDouble);
  if (grid > 0) {
    const auto i = at::arange(grid, at::kDouble) + 0.5;
    const auto gx = (i * (static_cast<double>(scene.width) / grid)).view({1, grid}).expand({grid, grid});
    const auto gy = (i * (static_cast<double>(scene.height) / grid)).view({grid, 1}).expand({grid, grid});
    xy = at::stack({gx, gy}, 2).reshape({grid * grid, 2});
  }
  const auto layers = at::full({xy.size(0)}, -1, at::kLong);
  if (scene.query_xy.defined() && scene.query_xy.numel() > 0) {
    scene.query_xy = at::cat({scene.query_xy.to(at::kDouble), xy});
    scene.query_layer = at::cat({scene.query_layer, layers});
  } else {
    scene.query_xy = xy, scene.query_layer = layers;
  }
}

Scene photo_camera_scene(const Photo& photo, int64_t width, int64_t height, int64_t frames, CameraMove move,
                         int64_t grid) {
  WorldSpec spec;
  spec.width = width, spec.height = height, spec.frames = frames;
  spec.validate();
  if (!photo.image.defined() || photo.image.dim() != 3 || photo.image.size(0) != 3)
    throw std::invalid_argument("photo_camera_scene: photo '" + photo.name + "' must be [3, H, W]");
  Scene scene;
  scene.width = width, scene.height = height, scene.frames = frames, scene.fps = spec.fps;
  scene.caption = "a photo of " + photo.description + "; the camera " + (move == CameraMove::kPan ? "pans." : "zooms in.");

  // The photo covers the frame with 30% to spare, so a pan of 80% of the spare never shows its edge.
  const double pw = static_cast<double>(photo.image.size(2)), ph = static_cast<double>(photo.image.size(1));
  const double fit = 1.3 * std::max(width / pw, height / ph);  // screen pixels per photo pixel
  const int64_t tw = std::max<int64_t>(1, std::lround(pw * fit)), th = std::max<int64_t>(1, std::lround(ph * fit));
  Layer layer;
  layer.depth = kReferenceDepth;
  layer.name = photo.description;
  layer.fill.texture = fit < 1.0 ? at::adaptive_avg_pool2d(photo.image.unsqueeze(0), {th, tw}).squeeze(0).contiguous()
                                 : photo.image;
  layer.fill.x0 = -tw / 2.0, layer.fill.x1 = tw / 2.0, layer.fill.y0 = -th / 2.0, layer.fill.y1 = th / 2.0;

  // Local origin (the photo's centre) -> screen: the frame centre plus the pan, scaled by the zoom.
  const auto u = clip_time(frames);  // [T] in [0, 1]
  const double cx = width / 2.0, cy = height / 2.0;
  const double spare_x = (tw - width) / 2.0, spare_y = (th - height) / 2.0;
  at::Tensor tx = at::full({frames}, cx, at::kDouble), ty = at::full({frames}, cy, at::kDouble);
  at::Tensor scale = at::ones({frames}, at::kDouble);
  if (move == CameraMove::kPan) {
    tx = tx + (1.0 - 2.0 * u) * (0.8 * spare_x);  // the photo slides left and a little up: the camera pans right
    ty = ty + (1.0 - 2.0 * u) * (0.3 * spare_y);
  } else {
    scale = at::exp(u * std::log(1.3));  // 1x -> 1.3x about the frame centre
  }
  layer.motion = similarity(tx, ty, at::zeros({frames}, at::kDouble), scale);
  scene.layers.push_back(std::move(layer));
  add_grid_queries(scene, grid);
  return scene;
}

Scene make_scene(const WorldSpec& spec, uint64_t seed, const PhotoBank* photos) {
  spec.validate();
  Random rng(seed);
  Scene scene;
  scene.width = spec.width, scene.height = spec.height, scene.frames = spec.frames, scene.fps = spec.fps;
  const Camera cam = random_camera(rng, spec);
  std::string background = add_background(rng, scene, spec, cam, photos);
  if (rng.chance(0.45)) background += add_midground(rng, scene, cam, photos);
  std::vector<size_t> object_layers;
  const auto phrases = add_objects(rng, scene, spec, cam, photos, object_layers);
  sort_layers(scene, object_layers);
  scene.event = random_event(rng, scene, object_layers);

  add_grid_queries(scene, spec.grid);
  std::vector<at::Tensor> xy{scene.query_xy}, layer_of{scene.query_layer};
  add_object_queries(rng, scene, object_layers, spec.object_points, xy, layer_of);
  scene.query_xy = at::cat(xy), scene.query_layer = at::cat(layer_of);

  std::string caption;
  for (size_t i = 0; i < phrases.size(); ++i) caption += (i ? ", " : "") + phrases[i];
  caption += (caption.empty() ? "" : " over ") + background + "; " + scene.event.phrase + ".";
  scene.caption = caption;
  return scene;
}

Clip render_scene(const Scene& scene, const at::Device& device) {
  check_scene(scene);
  auto [tracks, layer_of] = compute_tracks(scene);
  Clip clip;
  clip.video = render_video(scene, device);
  apply_event(clip.video, scene.event);
  clip.video.clamp_(0, 1);
  clip.tracks = std::move(tracks);
  clip.track_layer = layer_of;
  for (const auto& layer : scene.layers) clip.layer_depth.push_back(layer.depth);
  clip.caption = scene.caption;
  return clip;
}

Clip render_clip(const WorldSpec& spec, uint64_t seed, const PhotoBank* photos, const at::Device& device) {
  Clip clip = render_scene(make_scene(spec, seed, photos), device);
  clip.seed = seed;
  return clip;
}

std::vector<uint64_t> validation_seeds(int64_t count) {
  // Far above any training seed counter, so validation clips never appear in training.
  constexpr uint64_t kBase = 9'000'000'000'000ULL;
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < count; ++i) seeds.push_back(kBase + 7919ULL * static_cast<uint64_t>(i));
  return seeds;
}

const std::vector<std::string>& colour_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& c : palette()) out.push_back(c.name);
    return out;
  }();
  return names;
}

const std::vector<std::string>& shape_names() {
  static const std::vector<std::string> names = {"circle",   "ellipse",  "square",  "rectangle",
                                                 "triangle", "pentagon", "hexagon", "star"};
  return names;
}

}  // namespace ms::world
