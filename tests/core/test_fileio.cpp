#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "testutil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace mythos;

namespace {

using testutil::TempDir;

std::vector<std::string> listDir(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

void writePlain(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

template <class E, class F>
std::string expectThrowWith(F&& f, const std::string& needle) {
    try {
        f();
    } catch (const E& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
        return {};
    }
    ADD_FAILURE() << "nothing was thrown";
    return {};
}

} // namespace

TEST(FileIo, ReadTextFileReadsWholeFile) {
    TempDir dir;
    std::string content(200000, 'x');
    content[0] = 'a';
    content.back() = 'z';
    content[1000] = '\0'; // binary-safe
    writePlain(dir / "a.txt", content);
    EXPECT_EQ(readTextFile(dir / "a.txt"), content);
    writePlain(dir / "empty.txt", "");
    EXPECT_EQ(readTextFile(dir / "empty.txt"), "");
}

TEST(FileIo, ReadTextFileErrorsNameTheFile) {
    TempDir dir;
    expectThrowWith<FileError>([&] { readTextFile(dir / "missing.json"); }, "missing.json");
    writePlain(dir / "big.json", std::string(101, ' '));
    auto msg = expectThrowWith<FileError>([&] { readTextFile(dir / "big.json", 100); }, "big.json");
    EXPECT_NE(msg.find("too large"), std::string::npos) << msg;
    EXPECT_EQ(readTextFile(dir / "big.json", 101).size(), 101u); // the cap itself is allowed
    fs::create_directory(dir / "folder.json");
    expectThrowWith<FileError>([&] { readTextFile(dir / "folder.json"); }, "folder.json");
}

TEST(FileIo, WriteFileAtomicCreatesAndReplacesCompletely) {
    TempDir dir;
    const fs::path target = dir / "out.json";
    writeFileAtomic(target, std::string(100000, 'L'));
    EXPECT_EQ(readTextFile(target), std::string(100000, 'L'));
    writeFileAtomic(target, "short");
    EXPECT_EQ(readTextFile(target), "short"); // no tail of the longer old content
    writeFileAtomic(target, "");
    EXPECT_EQ(fs::file_size(target), 0u);
    EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"out.json"}); // no temp files left
}

TEST(FileIo, WriteFileAtomicKeepsModeOfReplacedFile) {
    TempDir dir;
    const fs::path target = dir / "private.txt";
    writePlain(target, "old");
    fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write);
    writeFileAtomic(target, "new");
    EXPECT_EQ(readTextFile(target), "new");
    EXPECT_EQ(fs::status(target).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

TEST(FileIo, WriteIntoNonexistentFolderFailsCleanly) {
    TempDir dir;
    const fs::path target = dir / "no_such_folder" / "out.json";
    expectThrowWith<FileError>([&] { writeFileAtomic(target, "data"); }, target.string());
    EXPECT_FALSE(fs::exists(dir / "no_such_folder"));
    EXPECT_TRUE(listDir(dir.path()).empty());
}

TEST(FileIo, WriteBelowARegularFileFailsCleanly) {
    // Tests may run as root, where a chmod'ed folder is still writable; a path whose
    // parent is a regular file can never be created.
    TempDir dir;
    writePlain(dir / "plain", "I am a file");
    const fs::path target = dir / "plain" / "out.json";
    expectThrowWith<FileError>([&] { writeFileAtomic(target, "data"); }, target.string());
    EXPECT_EQ(readTextFile(dir / "plain"), "I am a file");
    EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"plain"});
}

TEST(FileIo, WriteOverAFolderFailsAndKeepsIt) {
    TempDir dir;
    fs::create_directory(dir / "taken");
    expectThrowWith<FileError>([&] { writeFileAtomic(dir / "taken", "data"); }, "taken");
    EXPECT_TRUE(fs::is_directory(dir / "taken"));
    EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"taken"});
}

TEST(FileIo, AtomicFileTempIsHiddenSiblingAndRemovedWithoutCommit) {
    TempDir dir;
    const fs::path target = dir / "model.safetensors";
    writePlain(target, "original");
    fs::path temp;
    {
        AtomicFile f(target);
        temp = f.tempPath();
        EXPECT_EQ(f.target(), target);
        EXPECT_EQ(temp.parent_path(), target.parent_path());
        EXPECT_EQ(temp.filename().string().rfind(".model.safetensors.tmp-", 0), 0u) << temp;
        EXPECT_TRUE(fs::exists(temp));
        writePlain(temp, "half-written");
    } // no commit: abandoned
    EXPECT_FALSE(fs::exists(temp));
    EXPECT_EQ(readTextFile(target), "original");
    EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"model.safetensors"});
}

TEST(FileIo, AtomicFileCommitRenamesOverTarget) {
    TempDir dir;
    const fs::path target = dir / "a.bin";
    writePlain(target, "old contents that are longer");
    AtomicFile f(target);
    writePlain(f.tempPath(), "new");
    f.commit();
    EXPECT_EQ(readTextFile(target), "new");
    EXPECT_FALSE(fs::exists(f.tempPath()));
    EXPECT_THROW(f.commit(), FileError);
}

TEST(FileIo, TwoAtomicFilesUseDistinctTemps) {
    TempDir dir;
    AtomicFile a(dir / "x"), b(dir / "x");
    EXPECT_NE(a.tempPath(), b.tempPath());
}

TEST(FileIo, RelativeTargetWorks) {
    TempDir dir;
    const fs::path old = fs::current_path();
    fs::current_path(dir.path());
    EXPECT_NO_THROW(writeFileAtomic("rel.txt", "hi"));
    fs::current_path(old);
    EXPECT_EQ(readTextFile(dir / "rel.txt"), "hi");
    EXPECT_EQ(listDir(dir.path()), std::vector<std::string>{"rel.txt"});
}

TEST(PathKind, SymlinkLoopsAreFileErrorsInWords) {
    testutil::TempDir dir("pathkind");
    EXPECT_EQ(pathKind(dir.path()), PathKind::Folder);
    EXPECT_EQ(pathKind(dir / "missing"), PathKind::Missing);
    EXPECT_EQ(pathKind(dir / "missing" / "deeper"), PathKind::Missing);
    std::ofstream(dir / "file.txt") << "x";
    EXPECT_EQ(pathKind(dir / "file.txt"), PathKind::File);
    EXPECT_EQ(pathKind(dir / "file.txt" / "below"), PathKind::Missing);
    std::filesystem::create_symlink(dir / "b", dir / "a");
    std::filesystem::create_symlink(dir / "a", dir / "b");
    try {
        pathKind(dir / "a");
        ADD_FAILURE() << "no error for a symlink loop";
    } catch (const FileError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find((dir / "a").string()), std::string::npos) << msg;
        EXPECT_NE(msg.find("symbolic links"), std::string::npos) << msg;
        EXPECT_EQ(msg.find("filesystem error"), std::string::npos) << msg;
    }
}
