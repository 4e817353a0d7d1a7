// The CLI's media subcommands: generate, tracks, eval, world (built when OpenCV is found; see docs/USAGE.md).
// Each takes the whole command line (argv[1] is the subcommand's name) and returns the process exit code:
// 0 on success, 2 on bad input (the message, naming the file or option at fault, goes to stderr).
#pragma once

int generate_command(int argc, char** argv);
int tracks_command(int argc, char** argv);
int eval_command(int argc, char** argv);
int world_command(int argc, char** argv);
int evaluate_command(int argc, char** argv);  // a method on the world's validation clips
