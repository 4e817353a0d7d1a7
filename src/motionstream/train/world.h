// The synthetic world: procedural training clips with exact ground-truth point tracks.
//
// A clip is a stack of flat layers (a background, maybe a mid-ground band or hill, 1..4 objects), each a shape
// filled with a texture and moved by one 2D affine per frame (its own motion composed with a camera motion scaled
// by 1/depth for parallax). Because every layer moves rigidly, where a point goes is known exactly:
// x(t) = A_L(t) * A_L(0)^-1 * x(0). Rendering is vectorised over all frames of a layer (grid sampling plus
// analytic signed distances for the soft shape edges) and runs on any ATen device; all random draws happen on the
// CPU generator, so a seed fixes the clip whatever the device. See docs/WORLD.md.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "motionstream/tracks/track_set.h"
#include "motionstream/train/photo_bank.h"

namespace ms::world {

struct WorldSpec {
  int64_t width = 128, height = 128;  // pixels, multiples of 16
  int64_t frames = 49;                // pixel frames, must be 1 + 4k
  double fps = 16.0;
  int64_t min_objects = 1, max_objects = 4;
  int64_t grid = 16;              // dense tracks: grid x grid points over the first frame (plus object points)
  int64_t object_points = 8;      // extra tracks sampled inside each object on frame 0
  double camera_motion = 0.6;     // probability that the camera moves (pan/zoom/rotate/dolly parallax)
  double photo_background = 0.5;  // probability of a photo background when a PhotoBank is given
  void validate() const;          // std::invalid_argument naming the field and value
};

struct Clip {
  at::Tensor video;                 // [T, 3, H, W] float32 in [0, 1], on the render device
  TrackSet tracks;                  // [T, N, 2] pixels + visibility (CPU); width/height = spec size; fps = spec fps
  at::Tensor track_layer;           // [N] int64: which layer each track lives on (0 = background)
  std::vector<double> layer_depth;  // per layer, larger = farther
  std::string caption;              // names the objects and their motion, plus one text-only event
  uint64_t seed = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// The scene description that render_scene draws. make_scene builds a random one; tests build them by hand.
// Local coordinates: a layer's own 2D frame, in screen pixels at scale 1, origin at the shape's centre.
// Screen coordinates: pixels, (0, 0) the top-left corner of the image, pixel centres at (i + 0.5, j + 0.5).

enum class ShapeKind { kEverywhere, kCircle, kEllipse, kRectangle, kPolygon, kStar, kBand };

struct Shape {
  ShapeKind kind = ShapeKind::kEverywhere;
  double half_width = 0;  // circle / polygon / star: the (outer) radius; ellipse, rectangle, band: half sizes
  double half_height = 0;
  int64_t corners = 0;        // polygon: corners (3 = triangle); star: points
  double inner_ratio = 0.45;  // star: inner radius / outer radius
  double wave_amplitude = 0;  // band: its centre line is y = amplitude * sin(2 pi x / period + phase)
  double wave_period = 1;
  double wave_phase = 0;
};

// Signed distance to the shape's edge in local units: < 0 inside, > 0 outside. The sign is exact (it alone decides
// coverage and visibility); the magnitude is exact near straight edges and a close estimate elsewhere, which is
// all the one-pixel anti-aliasing ramp needs. local: [..., 2] (x, y), any float dtype/device -> [...]
at::Tensor signed_distance(const Shape& shape, const at::Tensor& local);

// What a layer shows: an RGB texture stretched over a box of local coordinates (texel edges at the box edges).
// A 1x1 texture is a flat colour and is drawn without sampling.
struct Fill {
  at::Tensor texture;  // [3, h, w] float32 in [0, 1], CPU
  double x0 = -1, y0 = -1, x1 = 1, y1 = 1;
  static Fill flat(double r, double g, double b);
};

struct Layer {
  Shape shape;
  Fill fill;
  double depth = 1.0;  // larger = farther
  at::Tensor motion;   // [T, 2, 3] float64 CPU: local (x, y, 1) -> screen pixels at frame t
  std::string name;    // caption words, e.g. "red circle"; empty for unnamed layers
};

enum class EventKind { kNone, kLightDims, kLightBrightens, kFogRollsIn, kFogClears, kRecolour };

// The one change per clip that the tracks do not determine; it ramps smoothly between two fractions of the clip.
struct Event {
  EventKind kind = EventKind::kNone;
  double start = 0.3, end = 0.8;   // fractions of the clip (0 = first frame, 1 = last)
  double strength = 0.5;           // light: gain change; fog: how far colours blend toward the fog
  std::array<double, 3> colour{};  // fog colour, or the colour a recoloured layer turns
  int64_t layer = -1;              // kRecolour: which layer changes colour
  std::string phrase;              // caption words, e.g. "the light dims"
};

struct Scene {
  int64_t width = 128, height = 128, frames = 49;
  double fps = 16.0;
  std::vector<Layer> layers;  // back to front: strictly decreasing depth; layer 0 is the background
  Event event;
  at::Tensor query_xy;     // [N, 2] float64: frame-0 screen positions to track
  at::Tensor query_layer;  // [N] int64: the layer each query lies on; -1 = the top-most layer covering it
  std::string caption;
};

// A random scene: what render_clip draws. All random numbers come from one CPU generator seeded with `seed`.
Scene make_scene(const WorldSpec& spec, uint64_t seed, const PhotoBank* photos = nullptr);

// Draws the scene and computes its tracks. Tracks: a query on layer L moves as A_L(t) * A_L(0)^-1; it is visible at
// frame t iff it is inside the frame, inside its own layer's shape, and no nearer layer's shape covers it (alpha >
// 0.5, i.e. signed distance < 0). Throws std::invalid_argument for an inconsistent scene.
Clip render_scene(const Scene& scene, const at::Device& device = at::kCPU);

Clip render_clip(const WorldSpec& spec, uint64_t seed, const PhotoBank* photos = nullptr,
                 const at::Device& device = at::kCPU);

std::vector<uint64_t> validation_seeds(int64_t count = 32);  // fixed seeds every later report uses

// A real photograph alone, filling the frame while the camera pans across it or zooms into it: the clips on which
// the autoencoder reports reconstruction of real image statistics. The photo is area-resampled once to about one
// texel per screen pixel (a camera's own filtering) and keeps its own colours; grid tracks, no objects, no event.
// Deterministic: no random draws.
enum class CameraMove { kPan, kZoom };
Scene photo_camera_scene(const Photo& photo, int64_t width, int64_t height, int64_t frames, CameraMove move,
                         int64_t grid = 8);

// ---- helpers for building scenes by hand ----
// [T, 2, 3] float64: a pure translation starting at (x0, y0) and moving (dx, dy) pixels per frame.
at::Tensor translating(int64_t frames, double x0, double y0, double dx, double dy);
// Grid queries (query_layer -1) at ((i + 0.5) * width / grid, (j + 0.5) * height / grid), row by row.
void add_grid_queries(Scene& scene, int64_t grid);

// The fixed vocabularies the captions use (documented in docs/WORLD.md).
const std::vector<std::string>& colour_names();
const std::vector<std::string>& shape_names();

}  // namespace ms::world
