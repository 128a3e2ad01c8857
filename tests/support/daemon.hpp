#pragma once
// Test support: runs a program (dockd) as a child process with its output in a log file, waits
// for it through a pidfd (no polling loops), and kills it on demand or on destruction. Plain
// C++ (errors are exceptions), so programs other than Boost.Test suites use it too (tests/chaos).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace bodydock::test {

class Daemon {
 public:
  /// Starts args[0] with args; stdout and stderr go to `log` (appended).
  Daemon(const std::vector<std::string>& args, const std::filesystem::path& log) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd_ < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      throw std::runtime_error("pidfd_open: " + std::string(std::strerror(errno)));
    }
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::milliseconds(-1));
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  /// Waits for the process to exit; returns its exit status (128 + signal when killed), or -1
  /// if still running. Once it has exited, every call returns that status.
  int wait_exit(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return status_;
    pollfd p{pidfd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) == 0) return -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return status_;
  }
  [[nodiscard]] bool running() const { return pid_ > 0; }
  /// Signals the process if it has not been reaped yet (never pid -1: that would be everyone).
  void kill9() { signal(SIGKILL); }
  [[nodiscard]] pid_t pid() const { return pid_; }
  void terminate() { signal(SIGTERM); }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int status_ = -1;
};

/// The whole text of a file.
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// How many times `what` occurs in `text` (overlapping occurrences count).
inline std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// Runs a command to completion (at most `limit`); returns its exit status and output.
inline std::pair<int, std::string> run_command(const std::vector<std::string>& args, const std::filesystem::path& log,
                                               std::chrono::milliseconds limit = std::chrono::milliseconds(120000)) {
  std::filesystem::remove(log);
  Daemon d(args, log);
  const int rc = d.wait_exit(limit);
  return {rc, slurp(log)};
}

}  // namespace bodydock::test
