#pragma once
/// What every bodydock command line does the same way: no arguments print the usage and exit 2;
/// --help prints it and exits 0; --version prints "<program> <version>".

#include <cstdio>
#include <optional>
#include <string>

namespace bodydock::dock {

/// An exit code when argv[1] was one of those, nullopt to go on with the command.
inline std::optional<int> common_options(int argc, char** argv, const char* program, const char* usage, const char* version) {
  if (argc < 2) {
    std::fputs(usage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h") {
    std::fputs(usage, stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("%s %s\n", program, version);
    return 0;
  }
  return std::nullopt;
}

}  // namespace bodydock::dock
