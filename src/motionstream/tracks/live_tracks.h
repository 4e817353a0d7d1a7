// LiveTracks: the controls a user draws while the video plays (drags, pins, paths), turned into the TrackSet of
// the stream so far.
//
// Every control carries the index of the frame the user was looking at when they acted. A control drawn on frame k
// steers frames k + 1 on: the generator runs ahead of the screen, so when a control arrives some of those frames
// may already exist; the next chunk then starts from the newest state of every control. Before a control begins,
// its points hold still where it began (the content under the cursor was there), so each control is a whole-stream
// track whose past is consistent with what the user saw.
//
// Positions are pixels of a width x height image (the model's). Points outside the image are invisible.
// Bad input throws std::invalid_argument naming the argument.
#pragma once

#include <cstdint>
#include <vector>

#include "motionstream/tracks/track_generators.h"
#include "motionstream/tracks/track_set.h"

namespace ms {

class LiveTracks {
 public:
  LiveTracks(int64_t width, int64_t height, double fps);

  // A drag: a grid x grid block of points `spacing` pixels apart centred on `at`, following the cursor until
  // drag_up, after which its points are released (invisible, holding where they were let go). Starting a drag while
  // another is held ends the old one at that frame.
  void drag_down(int64_t frame, Point2 at, int64_t grid, double spacing);
  void drag_move(int64_t frame, Point2 at);  // ignored when no drag is held
  void drag_up(int64_t frame, Point2 at);    // ignored when no drag is held
  // A point that holds still for the whole stream.
  void pin(int64_t frame, Point2 at);
  // A point at the first vertex that travels the polyline at constant speed over `frames` frames from frame + 1,
  // then holds at the last vertex.
  void path(int64_t frame, std::vector<Point2> vertices, int64_t frames);
  // Forgets every control (the next chunk is generated without tracks).
  void clear();

  bool dragging() const;
  int64_t points() const;  // tracks the controls make
  bool empty() const { return points() == 0; }
  // Tracks for frames [0, frames). Requires !empty().
  TrackSet tracks(int64_t frames) const;

 private:
  // One control; its points keep their place in the track order for as long as it lives (the generator keys each
  // track's random ID by its index).
  struct Control {
    enum Kind { kDrag, kPin, kPath } kind = kDrag;
    std::vector<Point2> offsets;                     // drag: grid points relative to the cursor; pin, path: {0, 0}
    std::vector<std::pair<int64_t, Point2>> cursor;  // drag: (frame drawn on, position), frames non-decreasing
    int64_t released_after = -1;                     // drag: released after this frame; < 0 while held
    int64_t start_frame = 0, frames = 0;             // path: leaves the first vertex after start_frame
    std::vector<Point2> vertices;                    // pin: its point; path: the polyline
  };
  Point2 checked(Point2 p, const char* what) const;
  Point2 position(const Control& control, int64_t frame) const;  // where the control's anchor is on this frame
  Control* held_drag();

  int64_t width_, height_;
  double fps_;
  std::vector<Control> controls_;  // in creation order
};

}  // namespace ms
