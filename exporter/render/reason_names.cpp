// SPDX-License-Identifier: Apache-2.0
#include "render/reason_names.h"

#include "util/file_text.h"

#include <linux/types.h>
#include <asm/kvm.h>  // DE_VECTOR ... XM_VECTOR, used inside SVM_EXIT_REASONS
#include <asm/svm.h>
#include <asm/vmx.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kvm_exit.h"
#include "util/text.h"

namespace kvmexit {
namespace {

using Table = std::map<std::uint32_t, std::string>;

// SVM_EXIT_REASONS mixes int codes (SVM_EXIT_ERR is -1) with unsigned ones
// (0x8000xxxx): a signed 64-bit field takes both without narrowing.
struct UapiReason {
  std::int64_t code;
  const char* name;
};
constexpr UapiReason kUapiVmxReasons[] = {VMX_EXIT_REASONS};
constexpr UapiReason kUapiSvmReasons[] = {SVM_EXIT_REASONS};

// arm64 has no uapi table of exception classes: ESR_ELx_EC_* of Linux 6.12's
// arch/arm64/include/asm/esr.h, named as the kvm_exit format names them
// (kvm_arm_exception_class), and the exception types that are not a trap
// (ARM_EXCEPTION_* of asm/kvm_asm.h, kvm_arm_exception_type). Only where the
// running kernel's format cannot be read.
constexpr UapiReason kArm64ExceptionClasses[] = {
    {0x00, "UNKNOWN"},     {0x01, "WFx"},         {0x03, "CP15_32"},     {0x04, "CP15_64"},
    {0x05, "CP14_MR"},     {0x06, "CP14_LS"},     {0x07, "FP_ASIMD"},    {0x08, "CP10_ID"},
    {0x09, "PAC"},         {0x0c, "CP14_64"},     {0x0d, "BTI"},         {0x0e, "ILL"},
    {0x11, "SVC32"},       {0x12, "HVC32"},       {0x13, "SMC32"},       {0x15, "SVC64"},
    {0x16, "HVC64"},       {0x17, "SMC64"},       {0x18, "SYS64"},       {0x19, "SVE"},
    {0x1a, "ERET"},        {0x1c, "FPAC"},        {0x1d, "SME"},         {0x1f, "IMP_DEF"},
    {0x20, "IABT_LOW"},    {0x21, "IABT_CUR"},    {0x22, "PC_ALIGN"},    {0x24, "DABT_LOW"},
    {0x25, "DABT_CUR"},    {0x26, "SP_ALIGN"},    {0x28, "FP_EXC32"},    {0x2c, "FP_EXC64"},
    {0x2f, "SERROR"},      {0x30, "BREAKPT_LOW"}, {0x31, "BREAKPT_CUR"}, {0x32, "SOFTSTP_LOW"},
    {0x33, "SOFTSTP_CUR"}, {0x34, "WATCHPT_LOW"}, {0x35, "WATCHPT_CUR"}, {0x38, "BKPT32"},
    {0x3a, "VECTOR32"},    {0x3c, "BRK64"},
};
constexpr UapiReason kArm64ExceptionTypes[] = {
    {0, "IRQ"}, {1, "SERROR"}, {2, "TRAP"}, {3, "ILLEGAL"}, {0xbadca11, "HYP_GONE"},
};

constexpr std::string_view kPrintFmt = "print fmt:";
constexpr std::string_view kPrintSymbolic = "__print_symbolic(";
constexpr std::string_view kUnknown = "unknown";
constexpr std::string_view kFailedVmentrySuffix = " FAILED_VMENTRY";

// Thrown inside this file only; FromTracepointFormat turns it into its error string.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A short quotable piece of `text` for error messages.
std::string Excerpt(std::string_view text) {
  constexpr std::size_t kMaxLength = 40;
  std::string excerpt(text.substr(0, kMaxLength));
  if (text.size() > kMaxLength) excerpt += "...";
  return "\"" + excerpt + "\"";
}

// Index just past the string literal starting at text[quote].
std::size_t SkipStringLiteral(std::string_view text, std::size_t quote) {
  for (std::size_t i = quote + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  throw FormatError("unterminated string literal at " + Excerpt(text.substr(quote)));
}

// Index of the bracket closing text[open] ('(' or '{'). String literals are
// skipped because a reason name may contain any bracket.
std::size_t FindClosing(std::string_view text, std::size_t open) {
  std::string owed_closers;
  for (std::size_t i = open; i < text.size();) {
    const char c = text[i];
    if (c == '"') {
      i = SkipStringLiteral(text, i);
      continue;
    }
    if (c == '(' || c == '{') {
      owed_closers.push_back(c == '(' ? ')' : '}');
    } else if (c == ')' || c == '}') {
      if (owed_closers.empty() || owed_closers.back() != c) {
        throw FormatError("unbalanced '" + std::string(1, c) + "' at " + Excerpt(text.substr(i)));
      }
      owed_closers.pop_back();
      if (owed_closers.empty()) return i;
    }
    ++i;
  }
  throw FormatError("text ends before the bracket closing " + Excerpt(text.substr(open)));
}

// Index of the first ',' outside brackets and string literals, or npos.
std::size_t FindTopLevelComma(std::string_view text) {
  int depth = 0;
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '"') {
      i = SkipStringLiteral(text, i);
      continue;
    }
    if (c == '(' || c == '{') ++depth;
    if (c == ')' || c == '}') --depth;
    if (c == ',' && depth == 0) return i;
    ++i;
  }
  return std::string_view::npos;
}

std::string ParseStringLiteral(std::string_view token) {
  if (token.empty() || token.front() != '"' || SkipStringLiteral(token, 0) != token.size()) {
    throw FormatError("expected a quoted reason name, got " + Excerpt(token));
  }
  std::string text;
  for (std::size_t i = 1; i + 1 < token.size(); ++i) {
    if (token[i] == '\\') ++i;
    text.push_back(token[i]);
  }
  if (text.empty()) throw FormatError("empty reason name");
  return text;
}

std::int64_t ParseNumber(std::string_view token) {
  const bool hex = token.starts_with("0x") || token.starts_with("0X");
  const std::string_view digits = hex ? token.substr(2) : token;
  std::uint32_t value = 0;
  const auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), value, hex ? 16 : 10);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    throw FormatError("invalid number " + Excerpt(token) + " in an exit code");
  }
  return value;
}

// Kernel tables write codes as literals, as sums such as `0x040 + 14`, and
// SVM_EXIT_ERR as -1; the tracepoint field is 32 bits, so -1 is 0xffffffff.
std::uint32_t ParseCodeExpression(std::string_view expression) {
  std::int64_t total = 0;
  std::int64_t sign = 1;
  std::string_view rest = Trim(expression);
  // arm64's classes are macros in parentheses: `{ (0x24), "DABT_LOW" }`.
  while (rest.size() >= 2 && rest.front() == '(' && FindClosing(rest, 0) == rest.size() - 1) {
    rest = Trim(rest.substr(1, rest.size() - 2));
  }
  while (true) {
    while (rest.starts_with('-')) {
      sign = -sign;
      rest = TrimLeft(rest.substr(1));
    }
    const std::size_t token_end = std::min(rest.find_first_of(" \t\r\n+-"), rest.size());
    total += sign * ParseNumber(rest.substr(0, token_end));
    rest = TrimLeft(rest.substr(token_end));
    if (rest.empty()) break;
    if (rest.front() != '+' && rest.front() != '-') {
      throw FormatError("expected '+' or '-' at " + Excerpt(rest) + " in an exit code");
    }
    sign = rest.front() == '-' ? -1 : 1;
    rest = TrimLeft(rest.substr(1));
  }
  if (total < std::numeric_limits<std::int32_t>::min() ||
      total > std::numeric_limits<std::uint32_t>::max()) {
    throw FormatError("exit code " + Excerpt(Trim(expression)) + " does not fit in 32 bits");
  }
  return static_cast<std::uint32_t>(total);
}

// One `{ value, "name" }` entry, without its braces.
void AddEntry(std::string_view entry, Table& table) {
  const std::size_t comma = FindTopLevelComma(entry);
  if (comma == std::string_view::npos) {
    throw FormatError("expected { value, \"name\" }, got " + Excerpt(Trim(entry)));
  }
  const std::uint32_t code = ParseCodeExpression(entry.substr(0, comma));
  // __print_symbolic prints the first match, so a repeated code keeps its first name.
  table.emplace(code, ParseStringLiteral(Trim(entry.substr(comma + 1))));
}

// `args` is what __print_symbolic's parentheses hold: the value, then the entries.
Table ParseSymbolTable(std::string_view args) {
  const std::size_t value_end = FindTopLevelComma(args);
  if (value_end == std::string_view::npos) throw FormatError("__print_symbolic without entries");
  Table table;
  std::string_view rest = TrimLeft(args.substr(value_end + 1));
  while (!rest.empty()) {
    if (rest.front() != '{') throw FormatError("expected '{' at " + Excerpt(rest));
    const std::size_t close = FindClosing(rest, 0);
    AddEntry(rest.substr(1, close - 1), table);
    rest = TrimLeft(rest.substr(close + 1));
    if (rest.empty()) break;
    if (rest.front() != ',') throw FormatError("expected ',' at " + Excerpt(rest));
    rest = TrimLeft(rest.substr(1));
  }
  if (table.empty()) throw FormatError("__print_symbolic without entries");
  return table;
}

std::optional<std::uint32_t> OtherIsa(std::uint32_t isa) {
  if (isa == KVM_EXIT_ISA_VMX) return KVM_EXIT_ISA_SVM;
  if (isa == KVM_EXIT_ISA_SVM) return KVM_EXIT_ISA_VMX;
  return std::nullopt;
}

// N from the `REC->isa == N)` that ends `condition`.
std::optional<std::uint32_t> ConditionIsa(std::string_view condition) {
  const std::size_t field = condition.rfind("isa");
  if (field == std::string_view::npos) return std::nullopt;
  std::string_view rest = TrimLeft(condition.substr(field + 3));
  if (!rest.starts_with("==")) return std::nullopt;
  rest = TrimLeft(rest.substr(2));
  std::uint32_t isa = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), isa);
  if (ec != std::errc()) return std::nullopt;
  return isa;
}

struct TableSite {
  std::uint32_t isa;
  std::string_view args;
};

// The kernel prints `(REC->isa == 1) ? __print_symbolic(...) : __print_symbolic(...)`:
// the table after `?` is isa N's, the one after `:` the other isa's. Tables in any
// other position, or not about exit_reason, are someone else's and are skipped.
class TableLocator {
 public:
  std::optional<TableSite> Classify(std::string_view before, std::string_view args) {
    const std::optional<std::uint32_t> isa = BranchIsa(TrimRight(before));
    const std::string_view value = args.substr(0, FindTopLevelComma(args));
    if (!isa || value.find("exit_reason") == std::string_view::npos) return std::nullopt;
    return TableSite{*isa, args};
  }

 private:
  // The vmx or svm isa whose table follows `before`, if `before` ends an isa test's branch.
  std::optional<std::uint32_t> BranchIsa(std::string_view before) {
    if (before.ends_with('?')) {
      const std::optional<std::uint32_t> isa = ConditionIsa(before.substr(0, before.size() - 1));
      else_isa_ = isa ? OtherIsa(*isa) : std::nullopt;
      return else_isa_ ? isa : std::nullopt;
    }
    if (before.ends_with(':')) {
      const std::optional<std::uint32_t> isa = else_isa_;
      else_isa_.reset();
      return isa;
    }
    return std::nullopt;
  }

  std::optional<std::uint32_t> else_isa_;
};

// Calls visit(text before the call, args) for each __print_symbolic(args) of print_fmt.
template <typename Visit>
void ForEachSymbolTable(std::string_view print_fmt, Visit visit) {
  std::size_t cursor = 0;
  for (std::size_t call = print_fmt.find(kPrintSymbolic); call != std::string_view::npos;
       call = print_fmt.find(kPrintSymbolic, cursor)) {
    const std::size_t open = call + kPrintSymbolic.size() - 1;
    const std::size_t close = FindClosing(print_fmt, open);
    visit(print_fmt.substr(cursor, call - cursor), print_fmt.substr(open + 1, close - open - 1));
    cursor = close + 1;
  }
}

std::vector<TableSite> FindExitReasonTables(std::string_view print_fmt) {
  std::vector<TableSite> sites;
  TableLocator locator;
  ForEachSymbolTable(print_fmt, [&](std::string_view before, std::string_view args) {
    if (auto site = locator.Classify(before, args)) sites.push_back(*site);
  });
  return sites;
}

// The arguments of the table printing `REC-><field>` (no `REC->` prefix in
// `field`), or "" when the format has none.
std::string_view FindFieldTable(std::string_view print_fmt, std::string_view field) {
  std::string_view found;
  const std::string value_wanted = "REC->" + std::string(field);
  ForEachSymbolTable(print_fmt, [&](std::string_view, std::string_view args) {
    if (Trim(args.substr(0, FindTopLevelComma(args))) != value_wanted) return;
    if (!found.empty()) throw FormatError("more than one table of " + value_wanted);
    found = args;
  });
  return found;
}

// arm64's codes (KVM_EXIT_ISA_ARM64): the trap classes as they are, the other
// exception types past KVM_EXIT_ARM64_NOT_TRAP. TRAP itself is never a code.
Table Arm64Table(Table classes, const Table& types) {
  for (const auto& [type, name] : types) {
    if (type != KVM_EXIT_ARM64_TRAP) classes.emplace(KVM_EXIT_ARM64_NOT_TRAP + type, name);
  }
  return classes;
}

std::string_view PrintFmt(std::string_view format_text) {
  const std::size_t start = format_text.find(kPrintFmt);
  if (start == std::string_view::npos) {
    throw FormatError("no \"print fmt:\" line; is this a tracepoint format file?");
  }
  return format_text.substr(start + kPrintFmt.size());
}

Table TableFromUapi(std::span<const UapiReason> reasons) {
  Table table;
  for (const UapiReason& reason : reasons) {
    table.emplace(static_cast<std::uint32_t>(reason.code), reason.name);
  }
  return table;
}

// Why the running kernel's names could not be used, or "" when they can.
std::string KernelNamesProblem(const std::string& tracefs_root, const std::string& path,
                               const FileText& file, std::string_view parse_error) {
  if (file.error == ENOENT || file.error == ENOTDIR) {
    return "kvm not loaded or tracefs not mounted at " + tracefs_root + " (no " + path + ")";
  }
  if (file.error != 0) return "cannot read " + path + ": " + std::strerror(file.error);
  return "cannot parse " + path + ": " + std::string(parse_error);
}

void SetIfWanted(std::string* out, std::string text) {
  if (out != nullptr) *out = std::move(text);
}

}  // namespace

std::string IsaLabel(std::uint32_t isa) {
  if (isa == KVM_EXIT_ISA_VMX) return "vmx";
  if (isa == KVM_EXIT_ISA_SVM) return "svm";
  if (isa == KVM_EXIT_ISA_ARM64) return "arm64";
  return "isa" + std::to_string(isa);
}

std::optional<ReasonNames> ReasonNames::FromTracepointFormat(std::string_view format_text,
                                                             std::string* error) {
  try {
    const std::string_view print_fmt = PrintFmt(format_text);
    if (const std::string_view classes = FindFieldTable(print_fmt, "esr_ec"); !classes.empty()) {
      const std::string_view types = FindFieldTable(print_fmt, "ret");
      if (types.empty()) throw FormatError("an esr_ec table (arm64) without a table of ret");
      ReasonNames names = FromUapiHeaders();  // the x86 names, for a fleet's config
      names.origin_ = Origin::kKernelTracepoint;
      names.arm64_ = Arm64Table(ParseSymbolTable(classes), ParseSymbolTable(types));
      return names;
    }
    ReasonNames names = FromUapiHeaders();  // arm64's, for a fleet's config
    names.origin_ = Origin::kKernelTracepoint;
    names.vmx_.clear();
    names.svm_.clear();
    for (const TableSite& site : FindExitReasonTables(print_fmt)) {
      Table& table = site.isa == KVM_EXIT_ISA_VMX ? names.vmx_ : names.svm_;
      if (!table.empty()) {
        throw FormatError("more than one " + IsaLabel(site.isa) + " exit reason table");
      }
      table = ParseSymbolTable(site.args);
    }
    for (const std::uint32_t isa : {KVM_EXIT_ISA_VMX, KVM_EXIT_ISA_SVM}) {
      if (names.Size(isa) == 0) {
        throw FormatError("found no " + IsaLabel(isa) +
                          " exit reason table; expected `(REC->isa == 1) ? "
                          "__print_symbolic(REC->exit_reason & 0xffff, ...) : "
                          "__print_symbolic(REC->exit_reason, ...)`");
      }
    }
    return names;
  } catch (const FormatError& e) {
    SetIfWanted(error, e.what());
    return std::nullopt;
  }
}

ReasonNames ReasonNames::FromUapiHeaders() {
  ReasonNames names;
  names.origin_ = Origin::kUapiHeaders;
  names.vmx_ = TableFromUapi(kUapiVmxReasons);
  names.svm_ = TableFromUapi(kUapiSvmReasons);
  names.arm64_ =
      Arm64Table(TableFromUapi(kArm64ExceptionClasses), TableFromUapi(kArm64ExceptionTypes));
  return names;
}

ReasonNames ReasonNames::Load(const std::string& tracefs_root, std::string* note) {
  const std::string path =
      (std::filesystem::path(tracefs_root) / "events/kvm/kvm_exit/format").string();
  const FileText file = ReadFileText(path);
  std::string parse_error;
  if (file.error == 0) {
    if (auto names = FromTracepointFormat(file.text, &parse_error)) {
      SetIfWanted(note, "exit reason names from " + path);
      return *std::move(names);
    }
  }
  SetIfWanted(note, KernelNamesProblem(tracefs_root, path, file, parse_error) +
                        "; using the exit reason names of the uapi headers the exporter was "
                        "built with, which may lack reasons newer than those headers");
  return FromUapiHeaders();
}

std::string ReasonNames::Name(std::uint32_t isa, std::uint32_t code) const {
  if (isa != KVM_EXIT_ISA_VMX) return std::string(Find(isa, code).value_or(kUnknown));
  std::string name(Find(isa, code & KVM_EXIT_VMX_BASIC_REASON_MASK).value_or(kUnknown));
  if ((code & KVM_EXIT_VMX_FAILED_VMENTRY) != 0) name += kFailedVmentrySuffix;
  return name;
}

std::optional<std::string_view> ReasonNames::Find(std::uint32_t isa, std::uint32_t code) const {
  const Table& table = Entries(isa);
  const auto it = table.find(code);
  if (it == table.end()) return std::nullopt;
  return it->second;
}

std::optional<std::uint32_t> ReasonNames::Code(std::uint32_t isa, std::string_view name) const {
  for (const auto& [code, entry_name] : Entries(isa)) {
    if (entry_name == name) return code;
  }
  return std::nullopt;
}

std::size_t ReasonNames::Size(std::uint32_t isa) const { return Entries(isa).size(); }

const std::map<std::uint32_t, std::string>& ReasonNames::Entries(std::uint32_t isa) const {
  static const Table kNoTable;
  if (isa == KVM_EXIT_ISA_VMX) return vmx_;
  if (isa == KVM_EXIT_ISA_SVM) return svm_;
  if (isa == KVM_EXIT_ISA_ARM64) return arm64_;
  return kNoTable;
}

}  // namespace kvmexit
