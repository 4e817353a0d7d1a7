// Loading a module from a checkpoint whose names follow a foreign layout: each stored name goes through the name
// table of that layout (name_table.h). All-or-nothing like load_state_dict: every name and shape is checked before
// any value is copied.
#pragma once

#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "motionstream/io/name_table.h"
#include "motionstream/io/state_dict.h"

namespace ms::io {

class TensorFile;

struct ConvertedLoadReport {
  std::string layout;                // the table that was used
  LoadReport names;                  // loaded: our names; missing: our names; unexpected: stored names
  std::vector<std::string> ignored;  // stored names the table maps to nothing (rules with an empty target)
};

// Picks, among `layouts`, the table that converts the most stored names, then requires that every stored tensor
// converts to a module tensor of the same shape and that every module tensor is filled. Two stored names may map to
// the same tensor (Hugging Face files store the tied embedding twice): the first one is used, the other must have
// the same shape. Errors (SafetensorsError) name the file and the first offending tensor; a file that no table
// recognises is refused with the names of the layouts that were tried.
// Stored names under the table's ignored prefixes are skipped (and listed in the report).
ConvertedLoadReport load_converted_state_dict(torch::nn::Module& module, const std::string& path,
                                              const std::vector<const NameTable*>& layouts);

// The pieces of the above, for layouts that store a tensor of ours in parts (Hugging Face's separate q, k, v where
// the module has one fused qkv): the caller picks the table, then fills views of the module's tensors.
//
// The table among `layouts` that converts the most of the file's names; throws the error above when none converts any.
const NameTable& pick_name_table(const TensorFile& file, const std::vector<const NameTable*>& layouts);
// A module's parameters and buffers by name (the targets load_converted_state_dict fills).
std::map<std::string, at::Tensor> module_tensors(torch::nn::Module& module);
// Fills `targets` (tensors by name; views write through to what they view) from `file` through `table`, with the
// checks and errors of load_converted_state_dict; the report's names are the targets' names.
ConvertedLoadReport load_converted_tensors(const TensorFile& file, const std::map<std::string, at::Tensor>& targets,
                                           const NameTable& table);

}  // namespace ms::io
