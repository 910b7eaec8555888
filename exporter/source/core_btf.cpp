// SPDX-License-Identifier: Apache-2.0
#include "source/core_btf.h"

#include <bpf/btf.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "source/errno_text.h"
#include "source/kernel_checks.h"

namespace kvmexit {
namespace {

struct BtfFree {
  void operator()(btf* object) const { btf__free(object); }
};
using BtfPtr = std::unique_ptr<btf, BtfFree>;

// Adds `shift` to every type id at or past `first` that `type` refers to.
// btf__add_type copies a type with its strings but keeps its ids; libbpf
// v1.1 has no public visitor of a type's ids (btf_type_visit_type_ids is
// internal), so this walks the kinds that carry one.
void ShiftTypeIds(btf_type* type, std::uint32_t first, std::uint32_t shift) {
  const auto fix = [&](__u32& id) {
    if (id >= first) id += shift;
  };
  switch (btf_kind(type)) {
    case BTF_KIND_PTR:
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
    case BTF_KIND_FUNC:
    case BTF_KIND_VAR:
    case BTF_KIND_DECL_TAG:
    case BTF_KIND_TYPE_TAG:
      fix(type->type);
      break;
    case BTF_KIND_ARRAY:
      fix(btf_array(type)->type);
      fix(btf_array(type)->index_type);
      break;
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      btf_member* member = btf_members(type);
      for (std::uint16_t i = 0; i < btf_vlen(type); ++i) fix(member[i].type);
      break;
    }
    case BTF_KIND_FUNC_PROTO: {
      fix(type->type);
      btf_param* param = btf_params(type);
      for (std::uint16_t i = 0; i < btf_vlen(type); ++i) fix(param[i].type);
      break;
    }
    case BTF_KIND_DATASEC: {
      btf_var_secinfo* var = btf_var_secinfos(type);
      for (std::uint16_t i = 0; i < btf_vlen(type); ++i) fix(var[i].type);
      break;
    }
    default:
      break;  // INT, ENUM, ENUM64, FWD, FLOAT: no type ids
  }
}

}  // namespace

CoreBtf BuildCoreBtf(const std::string& btf_dir, std::string_view vendor_module) {
  CoreBtf core;
  std::vector<std::string> modules;
  for (std::string_view name : {std::string_view("kvm"), vendor_module}) {
    // vmlinux is the base, never a module (KVM built in, as on arm64).
    if (name.empty() || name == "vmlinux") continue;
    if (PathExists(btf_dir + "/" + std::string(name))) modules.emplace_back(name);
  }
  // Everything in vmlinux: libbpf finds it there by itself, no listing needed.
  if (modules.empty()) return core;
  // What it costs, for the log: the time, and how much it raised the
  // process's peak RSS (0 when an earlier peak was higher).
  const auto start = std::chrono::steady_clock::now();
  rusage usage_before{};
  ::getrusage(RUSAGE_SELF, &usage_before);
  const std::string vmlinux_path = btf_dir + "/vmlinux";
  BtfPtr vmlinux(btf__parse(vmlinux_path.c_str(), nullptr));
  if (!vmlinux) {
    core.error = "reading " + vmlinux_path + " failed: " + ErrnoText(errno);
    return core;
  }
  // The copy that grows: vmlinux parsed once more, rather than btf__add_btf
  // into an empty BTF, which re-adds every type and string (twice the time
  // and 11 MiB more peak RSS, measured). `vmlinux` stays unmodified as the
  // modules' base.
  BtfPtr merged(btf__parse(vmlinux_path.c_str(), nullptr));
  if (!merged) {
    core.error = "reading " + vmlinux_path + " failed: " + ErrnoText(errno);
    return core;
  }
  // vmlinux keeps its ids (1 .. first-1). A module's BTF is split BTF on top
  // of vmlinux: its own ids start at `first` in every module, so each one's
  // go after the modules copied before it.
  const std::uint32_t first = btf__type_cnt(vmlinux.get());
  std::uint32_t shift = 0;
  std::string held = "vmlinux";
  for (const std::string& name : modules) {
    std::string path = btf_dir;
    path.append("/").append(name);
    BtfPtr module(btf__parse_split(path.c_str(), vmlinux.get()));
    if (!module) {
      core.error = "reading " + path + " failed: " + ErrnoText(errno);
      return core;
    }
    const std::uint32_t end = btf__type_cnt(module.get());
    for (std::uint32_t id = first; id < end; ++id) {
      const int added =
          btf__add_type(merged.get(), module.get(), btf__type_by_id(module.get(), id));
      if (added < 0) {
        core.error = "copying " + path + " failed: " + ErrnoText(added);
        return core;
      }
      // Ours: btf__type_by_id hands out the type's place in merged's buffer.
      ShiftTypeIds(const_cast<btf_type*>(btf__type_by_id(merged.get(), added)), first, shift);
    }
    shift += end - first;
    held.append("+").append(name);
  }
  std::uint32_t size = 0;
  const void* raw = btf__raw_data(merged.get(), &size);
  if (raw == nullptr) {
    core.error = "encoding the merged BTF failed: " + ErrnoText(errno);
    return core;
  }
  // A file only this process can reach, gone with its fd; libbpf opens it by path.
  UniqueFd fd(::memfd_create("kvmexit-core-btf", MFD_CLOEXEC));
  if (!fd.valid()) {
    core.error = "memfd_create failed: " + ErrnoText(errno);
    return core;
  }
  for (std::uint32_t done = 0; done < size;) {
    const ssize_t n = ::write(fd.get(), static_cast<const char*>(raw) + done, size - done);
    if (n <= 0) {
      core.error = "writing the merged BTF failed: " + ErrnoText(n < 0 ? errno : EIO);
      return core;
    }
    done += static_cast<std::uint32_t>(n);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  core.path = "/proc/self/fd/" + std::to_string(fd.get());
  core.fd = std::move(fd);
  rusage usage_after{};
  ::getrusage(RUSAGE_SELF, &usage_after);
  core.note = "CO-RE BTF " + held + ": " + std::to_string(btf__type_cnt(merged.get()) - 1) +
              " types, " + std::to_string(size / 1024) + " KiB, built in " + std::to_string(ms) +
              " ms, peak RSS +" +
              std::to_string((usage_after.ru_maxrss - usage_before.ru_maxrss) / 1024) + " MiB";
  return core;
}

}  // namespace kvmexit
