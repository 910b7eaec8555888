// SPDX-License-Identifier: Apache-2.0
#include "config/yaml_document.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <sstream>
#include <vector>

#include "util/text.h"

namespace kvmexit {
namespace {

// Where each document of a YAML stream starts (its first token) and where its
// value starts (for messages), from the parser's events.
class DocumentStarts : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start;
    std::optional<YAML::Mark> value;
  };
  std::vector<Document> documents;

  void OnDocumentStart(const YAML::Mark& mark) override {
    documents.push_back({mark, std::nullopt});
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Value(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Value(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Value(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Value(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Value(mark);
  }
  void OnMapEnd() override {}

 private:
  void Value(const YAML::Mark& mark) {
    if (!documents.back().value) documents.back().value = mark;
  }
};

// Throws unless `text` holds at most one document; returns how many it holds.
// Not YAML::LoadAll: in yaml-cpp 0.7 it loops forever, allocating, on a token
// that cannot start a node, such as a top-level "," (jbeder/yaml-cpp#1040,
// fixed upstream after 0.8): the parser reports an empty document there without
// consuming the token. Here a document starting where the previous one started
// is that token, reported as invalid YAML.
std::size_t CountDocuments(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  const auto& documents = starts.documents;
  while (parser.HandleNextDocument(starts)) {
    const std::size_t count = documents.size();
    if (count >= 2 && documents[count - 1].start.pos == documents[count - 2].start.pos) {
      const YAML::Mark& at = documents.back().start;
      throw YamlProblem(at, "invalid YAML: unexpected " +
                                Quoted(text.substr(static_cast<std::size_t>(at.pos), 1)) +
                                " (no value can start with it)");
    }
  }
  if (documents.size() > 1) {
    throw YamlProblem(
        documents[1].value.value_or(documents[1].start),
        "only one YAML document is allowed, found " + std::to_string(documents.size()));
  }
  return documents.size();
}

}  // namespace

std::string Located(std::string_view source, const YAML::Mark& mark, std::string_view message) {
  std::string located(source);
  if (!mark.is_null()) {
    located += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
  return located + ": " + std::string(message);
}

std::optional<YAML::Node> LoadSingleDocument(const std::string& text) {
  try {
    if (CountDocuments(text) == 0) return std::nullopt;
    return YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp bounds its recursion but says only "bad file" when it does.
    throw YamlProblem(e.mark, "invalid YAML: lists and maps nested too deep (more than " +
                                  std::to_string(e.depth() - 1) + " levels)");
  } catch (const YAML::Exception& e) {
    throw YamlProblem(e.mark, "invalid YAML: " + e.msg);
  }
}

}  // namespace kvmexit
