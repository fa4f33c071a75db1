#pragma once
// Typed exceptions thrown by the engine. Messages are meant for a user: they name the
// file (or config field) and say what is wrong. The CLI's main and the GUI worker are the
// only places that catch them.
#include <stdexcept>
#include <string>

namespace mythos {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A file could not be opened, read or written.
class FileError : public Error {
public:
    using Error::Error;
};

// A file was read but its content is malformed, truncated or inconsistent.
class FormatError : public Error {
public:
    using Error::Error;
};

// A configuration is invalid (every problem is listed in the message).
class ConfigError : public Error {
public:
    using Error::Error;
};

// An argument passed to the engine is out of range (ids past the vocabulary, too long
// a sequence, ...).
class ArgumentError : public Error {
public:
    using Error::Error;
};

// A message on one line, as the CLI and the window's status bar show it: a ConfigError's
// "\n  - problem" list joined with "; ", any other line break a space.
std::string oneLine(std::string message);

// What the CLI and the window print for any exception that reaches them: oneLine(what()),
// and a std::filesystem error as "path: reason" rather than the library's
// "filesystem error: ... [path]" text.
std::string errorMessage(const std::exception& e);

// nlohmann::json's exception text without its "[json.exception.parse_error.101] " tag, with
// every byte outside printable ASCII written as \xNN (its "last read" quotes the file's
// bytes, which may be invalid UTF-8 or control characters).
std::string jsonErrorDetail(const std::exception& e);

// Long work was cancelled by the caller's progress callback.
class Cancelled : public Error {
public:
    Cancelled() : Error("cancelled") {}
};

} // namespace mythos
