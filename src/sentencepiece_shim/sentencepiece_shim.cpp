// A C interface over sentencepiece, built as a shared module of its own (libmotionstream_sentencepiece.so) that the
// umT5 tokenizer loads with dlmopen() into a link-map namespace of its own. Why: Debian's libsentencepiece carries
// and exports its own copy of protobuf-lite (3.14); linked beside libtorch's libprotobuf (3.21) the two copies bind
// to each other's symbols and the process crashes in static initialisers before main. In a separate namespace this
// module and its sentencepiece see only their own protobuf. Only C types cross the boundary.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#define MS_SHIM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
void set_error(char* error, size_t error_size, const std::string& message) {
  if (!error || error_size == 0) return;
  std::strncpy(error, message.c_str(), error_size - 1);
  error[error_size - 1] = '\0';
}
}  // namespace

// A loaded model, or nullptr with the reason in `error`.
MS_SHIM_EXPORT void* ms_spm_load(const char* path, char* error, size_t error_size) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(path);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    delete processor;
    return nullptr;
  }
  return processor;
}

MS_SHIM_EXPORT void ms_spm_free(void* processor) { delete static_cast<sentencepiece::SentencePieceProcessor*>(processor); }

MS_SHIM_EXPORT int ms_spm_piece_size(void* processor) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(processor)->GetPieceSize();
}

// Writes up to `capacity` ids and returns how many the text encodes to (more than capacity: call again with more
// room), or -1 with the reason in `error`.
MS_SHIM_EXPORT long ms_spm_encode(void* processor, const char* text, size_t text_size, int* ids, size_t capacity,
                                  char* error, size_t error_size) {
  std::vector<int> out;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(processor)->Encode(
      std::string(text, text_size), &out);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    return -1;
  }
  for (size_t i = 0; i < out.size() && i < capacity; ++i) ids[i] = out[i];
  return static_cast<long>(out.size());
}

// sentencepiece's trainer with command-line style arguments; 0 on success.
MS_SHIM_EXPORT int ms_spm_train(const char* args, char* error, size_t error_size) {
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    return -1;
  }
  return 0;
}
