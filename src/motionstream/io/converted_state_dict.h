// Loading a module from a checkpoint whose names follow a foreign layout: each stored name goes through the name
// table of that layout (name_table.h). All-or-nothing like load_state_dict: every name and shape is checked before
// any value is copied.
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "motionstream/io/name_table.h"
#include "motionstream/io/state_dict.h"

namespace ms::io {

struct ConvertedLoadReport {
  std::string layout;  // the table that was used
  LoadReport names;    // loaded: our names; missing: our names; unexpected: stored names
};

// Picks, among `layouts`, the table that converts the most stored names, then requires that every stored tensor
// converts to a module tensor of the same shape and that every module tensor is filled. Two stored names may map to
// the same tensor (Hugging Face files store the tied embedding twice): the first one is used, the other must have
// the same shape. Errors (SafetensorsError) name the file and the first offending tensor; a file that no table
// recognises is refused with the names of the layouts that were tried.
ConvertedLoadReport load_converted_state_dict(torch::nn::Module& module, const std::string& path,
                                              const std::vector<const NameTable*>& layouts);

}  // namespace ms::io
