#pragma once
/// `dockd demo`: a whole dock with emulated cameras in one process (the main job of the README).

#include <string>
#include <vector>

namespace bodydock::dock {

/// Runs the demo with its command-line arguments (after "demo"); returns the exit code.
int run_demo(const std::vector<std::string>& args);

}  // namespace bodydock::dock
