// The CLI's live-server subcommands (built when OpenCV, Boost.Beast and TurboJPEG are found; docs/PROTOCOL.md).
#pragma once

// serve: the options given; demo: the same with the bundled model by default. Returns the process exit code.
int serve_command(int argc, char** argv, bool demo);
