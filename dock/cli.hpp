#pragma once
/// What every bodydock command line does the same way: no arguments print the usage and exit 2;
/// --help prints it and exits 0; --version prints "<program> <version>"; whole numbers are
/// read one way.

#include <cstdio>
#include <exception>
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

/// A whole number written in decimal and nothing else ("12"; not "", "-1", "1e3", "12 ").
inline std::optional<unsigned long long> whole_number(const std::string& text) {
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (text.empty() || text[0] == '-' || used != text.size()) return std::nullopt;
  return v;
}

}  // namespace bodydock::dock
