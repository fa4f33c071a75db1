#pragma once
// One function per parser a user's file reaches. Each takes arbitrary bytes, runs them
// through the parser and what a caller does next with the result, and returns normally
// when the parser accepted them or refused them with a mythos::Error. Any other outcome
// (another exception escaping, a crash, a sanitizer report, a broken invariant, which
// aborts) is a bug. The libFuzzer mains (fuzz_main.cpp) and the regression test of the
// normal suite (tests/core/test_fuzz_regressions.cpp) call the same functions.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fuzz {

using Target = void (*)(const uint8_t* data, std::size_t size);

void safetensors(const uint8_t* data, std::size_t size); // a .safetensors file
void config(const uint8_t* data, std::size_t size);      // config.json
void tokenizer(const uint8_t* data, std::size_t size);   // tokenizer.json (first byte: the model's vocab)
void tiktoken(const uint8_t* data, std::size_t size);    // a .tiktoken file (first byte: its name)
void trace(const uint8_t* data, std::size_t size);       // a trace file
void prompts(const uint8_t* data, std::size_t size);     // prompts.jsonl
void ids(const uint8_t* data, std::size_t size);         // the CLI's --ids text
void variant(const uint8_t* data, std::size_t size);     // a config variant (JSON)

struct Named {
    const char* name; // fuzz_<name> is the libFuzzer program, corpus/<name> its seeds
    Target target;
};
const std::vector<Named>& targets();

} // namespace fuzz
