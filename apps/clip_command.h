// `motionstream clip-tokens`: the CLIP image tokens an image-to-video model cross-attends to, precomputed for one
// image (built when OpenCV is found, which reads the image). Returns the process exit code: 0 on success, 2 on bad
// input (the message, naming the file or option at fault, goes to stderr).
#pragma once

int clip_tokens_command(int argc, char** argv);
