#pragma once
/// The web page's files, compiled into the dock (cmake/embed_assets.cmake).

#include <string_view>
#include <vector>

namespace bodydock::dock::web {

struct Asset {
  std::string_view path;          ///< as requested, e.g. "/app.js"
  std::string_view content_type;
  std::string_view body;
};
const std::vector<Asset>& assets();

}  // namespace bodydock::dock::web
