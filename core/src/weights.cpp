#include "mythos/weights.h"
#include "halfprecision.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "hugepages.h"
#include "mythos/errors.h"
#include "mythos/fileio.h"
#include "mythos/safetensors.h"
#include "mythos/schema.h"

namespace fs = std::filesystem;

namespace mythos {

int64_t Tensor::numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
        n *= d;
    return n;
}

std::vector<float> Tensor::values() const {
    if (!isBf16())
        return data;
    std::vector<float> out(bf16.size());
    for (std::size_t i = 0; i < bf16.size(); ++i)
        out[i] = bf16ToFloat(bf16[i]);
    return out;
}

std::size_t Tensor::bytes() const { return data.size() * sizeof(float) + bf16.size() * sizeof(uint16_t); }

void Tensor::toBf16() {
    if (isBf16() || data.empty())
        return;
    bf16.resize(data.size());
    for (std::size_t i = 0; i < data.size(); ++i)
        bf16[i] = floatToBf16(data[i]);
    std::vector<float>().swap(data); // clear() would keep the capacity
}

void Tensor::toF32() {
    if (!isBf16())
        return;
    data = values();
    std::vector<uint16_t>().swap(bf16);
}

std::string weightTypeName(WeightType t) { return t == WeightType::BF16 ? "bf16" : "f32"; }

WeightType parseWeightType(const std::string& s) {
    if (s == "f32")
        return WeightType::F32;
    if (s == "bf16")
        return WeightType::BF16;
    throw ArgumentError("unknown weight type '" + s + "' (use f32 or bf16)");
}

std::vector<ExpectedTensor> expectedTensors(const Config& c) {
    std::vector<ExpectedTensor> out;
    walkSchema(c, [&](const SchemaTensor& t) { out.push_back({t.name, t.shape, t.kind == TensorKind::Tied}); });
    return out;
}

namespace {

uint64_t physicalMemory() {
    const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? uint64_t(pages) * uint64_t(size) : 0;
}

constexpr const char* kIndexName = "model.safetensors.index.json";

// model.safetensors.index.json (the Hugging Face convention for sharded checkpoints):
// {"metadata": {...}, "weight_map": {"tensor name": "model-00001-of-00002.safetensors"}}.
// Untrusted: every shard must be a plain file name in the folder (no path, no ".."), and
// exist; the map is returned for loadCheckpoint to hold each tensor to its named shard.
struct ShardIndex {
    std::vector<fs::path> files;                // the distinct shards, in name order
    std::map<std::string, std::string> shardOf; // tensor -> shard file name
};

ShardIndex readShardIndex(const fs::path& folder) {
    const fs::path file = folder / kIndexName;
    const std::string name = file.string();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(readTextFile(file, 64ull << 20));
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(name + ": not valid JSON: " + jsonErrorDetail(e));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw FormatError(name + ": needs a \"weight_map\" object of tensor name -> shard file");
    ShardIndex idx;
    std::set<std::string> shards;
    for (const auto& [tensor, shard] : j["weight_map"].items()) {
        if (!shard.is_string())
            throw FormatError(name + ": the shard of '" + tensor + "' is not a file name");
        const std::string f = shard.get<std::string>();
        if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos ||
            f.find('\\') != std::string::npos || f.find('\0') != std::string::npos)
            throw FormatError(name + ": the shard of '" + tensor + "' must be a file name in the folder, not \"" +
                              jsonErrorDetail(std::runtime_error(f)) + "\"");
        idx.shardOf.emplace(tensor, f);
        shards.insert(f);
    }
    if (shards.empty())
        throw FormatError(name + ": the weight_map lists no tensor");
    for (const auto& f : shards) {
        if (pathKind(folder / f) != PathKind::File)
            throw FileError(name + ": shard '" + f + "' is not a file in " + folder.string());
        idx.files.push_back(folder / f);
    }
    return idx;
}

std::vector<fs::path> weightFiles(const fs::path& folder) {
    if (pathKind(folder / kIndexName) != PathKind::Missing)
        return readShardIndex(folder).files;
    if (pathKind(folder / "model.safetensors") != PathKind::Missing)
        return {folder / "model.safetensors"};
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(folder, ec))
        if (entry.path().extension() == ".safetensors")
            files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

// splitmix64: seeds independent streams per tensor and chunk.
uint64_t splitmix(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(const void* data, std::size_t n, uint64_t h = 0xcbf29ce484222325ull) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

enum class Init { Normal, Uniform, Ones, Zeros, Value };

// Fills t with the initialisation, as fp32 or (bf16 = true) straight into bf16 bits: the
// same values rounded, without a full fp32 copy of the tensor.
void fillRandom(Tensor& t, Init init, double scale, uint64_t seed, const std::string& name, bool bf16 = false) {
    const int64_t n = t.numel();
    if (bf16)
        detail::resizeInHugePages(t.bf16, std::size_t(n));
    else
        detail::resizeInHugePages(t.data, std::size_t(n));
    auto store = [&t, bf16](int64_t i, float v) {
        if (bf16)
            t.bf16[std::size_t(i)] = floatToBf16(v);
        else
            t.data[std::size_t(i)] = v;
    };
    if (init == Init::Ones || init == Init::Zeros || init == Init::Value) {
        const float v = init == Init::Ones ? 1.0f : init == Init::Zeros ? 0.0f : float(scale);
        for (int64_t i = 0; i < n; ++i)
            store(i, v);
        return;
    }
    const uint64_t base = fnv1a(name.data(), name.size(), seed * 0x9E3779B97F4A7C15ull + 1);
    constexpr int64_t chunk = 1 << 16;
    const int64_t chunks = (n + chunk - 1) / chunk;
    const float fscale = float(scale);
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (int64_t ci = 0; ci < chunks; ++ci) {
        uint64_t state = base ^ (uint64_t(ci) * 0xD1B54A32D192ED03ull);
        const int64_t end = std::min(n, (ci + 1) * chunk);
        for (int64_t i = ci * chunk; i < end; i += 2) {
            // Two 24-bit uniforms from one draw: u1 in (0, 1], u2 in [0, 1).
            const uint64_t bits = splitmix(state);
            const float u1 = (float(bits >> 40) + 1.0f) * 0x1.0p-24f;
            const float u2 = float((bits >> 16) & 0xFFFFFFu) * 0x1.0p-24f;
            if (init == Init::Uniform) {
                store(i, (2 * u1 - 1) * fscale);
                if (i + 1 < end)
                    store(i + 1, (2 * u2 - 1) * fscale);
                continue;
            }
            // Box-Muller in float (|z| <= 5.8 from the 24-bit u1), with one sincosf: a 1B
            // model's initialisation is mostly this line, and the double version with
            // separate cos and sin took twice as long.
            const float r = std::sqrt(-2.0f * std::log(u1)) * fscale;
            float sn, cs;
            ::sincosf(6.28318530717958647692f * u2, &sn, &cs);
            store(i, r * cs);
            if (i + 1 < end)
                store(i + 1, r * sn);
        }
    }
}

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

bool bf16Eligible(const std::string& name) {
    return endsWith(name, ".weight") && !endsWith(name, "norm.weight") && !endsWith(name, "ffn.router.weight") &&
           name != "recurrent.act.halt.weight" && name != "recurrent.lora.scale.weight";
}

namespace {
void requireFolder(const fs::path& folder) {
    const PathKind kind = pathKind(folder);
    if (kind == PathKind::Missing)
        throw FileError(folder.string() + ": no such model folder");
    if (kind != PathKind::Folder)
        throw FileError(folder.string() +
                        ": not a model folder (expected a folder with config.json and model.safetensors)");
}
} // namespace

Config loadCheckpointConfig(const fs::path& folder) {
    requireFolder(folder);
    return loadConfig(folder / "config.json");
}

Checkpoint loadCheckpoint(const fs::path& folder, const ProgressFn& progress, WeightType type) {
    const Config config = loadCheckpointConfig(folder);
    return loadCheckpointAs(folder, config, progress, type);
}

Checkpoint loadCheckpointAs(const fs::path& folder, const Config& config, const ProgressFn& progress, WeightType type) {
    requireFolder(folder);
    Checkpoint ck;
    ck.folder = folder;
    ck.config = config;
    validateOrThrow(ck.config, (folder / "config.json").string(), physicalMemory());
    const bool indexed = pathKind(folder / kIndexName) != PathKind::Missing;
    const ShardIndex index = indexed ? readShardIndex(folder) : ShardIndex{weightFiles(folder), {}};
    const auto& files = index.files;
    if (files.empty())
        throw FileError(folder.string() + ": no .safetensors weight file in the folder");
    std::vector<SafetensorsFile> opened; // every shard mapped
    for (const auto& f : files)
        opened.push_back(SafetensorsFile::open(f));
    const std::string where = indexed             ? (folder / kIndexName).string()
                              : files.size() == 1 ? files[0].string()
                                                  : folder.string() + "/*.safetensors";

    const auto expected = expectedTensors(ck.config);
    int64_t done = 0;
    for (const auto& ex : expected) {
        const SafetensorsFile* file = nullptr;
        const TensorInfo* info = nullptr;
        if (indexed) {
            // The index names the one shard that holds it.
            if (const auto it = index.shardOf.find(ex.name); it != index.shardOf.end()) {
                for (const auto& f : opened)
                    if (f.path().filename() == it->second)
                        file = &f;
                if (!(info = file->find(ex.name)))
                    throw FormatError(where + ": says tensor '" + ex.name + "' is in " + it->second +
                                      ", which does not hold it");
            }
        } else {
            for (const auto& f : opened)
                if ((info = f.find(ex.name))) {
                    file = &f;
                    break;
                }
        }
        if (!info) {
            if (ex.optional)
                continue;
            throw FormatError(where + ": missing tensor '" + ex.name + "' (expected shape " + shapeToString(ex.shape) +
                              ")");
        }
        if (info->shape != ex.shape)
            throw FormatError(file->path().string() + ": tensor '" + ex.name + "' has shape " +
                              shapeToString(info->shape) + ", the config needs " + shapeToString(ex.shape));
        Tensor t;
        t.shape = ex.shape;
        if (type == WeightType::BF16 && bf16Eligible(ex.name))
            t.bf16 = file->readBf16(*info);
        else
            t.data = file->readF32(*info);
        // Done with these bytes of the mapping: dropping its pages keeps a checkpoint's
        // resident memory near the size of the weights kept, not twice that.
        file->release(*info);
        ck.weights.emplace(ex.name, std::move(t));
        if (progress && !progress(++done, int64_t(expected.size())))
            throw Cancelled();
    }
    // The reference ties head.weight to embed.weight; the engine always uses embed.weight.
    ck.weights.erase("head.weight");
    ck.weightsHash = hashWeights(ck.weights);
    return ck;
}

Weights randomWeights(const Config& cfg, uint64_t seed, const ProgressFn& progress, WeightType type) {
    validateOrThrow(cfg, "config", physicalMemory());
    Weights w;
    const auto expected = expectedTensors(cfg);
    int64_t done = 0;
    for (const auto& ex : expected) {
        if (ex.optional)
            continue;
        Tensor t;
        t.shape = ex.shape;
        const std::string& n = ex.name;
        if (n == "recurrent.injection.log_A" || n == "recurrent.injection.log_dt" || endsWith(n, "router_bias"))
            fillRandom(t, Init::Zeros, 0, seed, n);
        else if (n == "recurrent.injection.B")
            fillRandom(t, Init::Value, 0.1, seed, n);
        else if (endsWith(n, "norm.weight"))
            fillRandom(t, Init::Ones, 0, seed, n);
        else if (n == "recurrent.act.halt.bias") // nn.Linear's default bias init
            fillRandom(t, Init::Uniform, 1.0 / std::sqrt(double(cfg.dim)), seed, n);
        else // every Linear and Embedding weight, and lora.B: N(0, 0.02)
            fillRandom(t, Init::Normal, 0.02, seed, n, type == WeightType::BF16 && bf16Eligible(n));
        w.emplace(n, std::move(t));
        if (progress && !progress(++done, int64_t(expected.size()) - 1))
            throw Cancelled();
    }
    return w;
}

void saveCheckpoint(const fs::path& folder, const Config& cfg, const Weights& weights,
                    const std::map<std::string, std::string>& metadata, uint64_t maxShardBytes) {
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec)
        throw FileError(folder.string() + ": cannot create the folder: " + ec.message());
    std::vector<TensorToWrite> out;
    std::map<std::string, std::vector<float>> widened; // fp32 values of tensors held in bf16
    for (const auto& ex : expectedTensors(cfg)) {
        if (ex.optional)
            continue;
        auto it = weights.find(ex.name);
        if (it == weights.end())
            throw ArgumentError("cannot save: weight " + ex.name + " is missing");
        const Tensor& t = it->second;
        const float* data = t.isBf16() ? (widened[ex.name] = t.values()).data() : t.data.data();
        out.push_back({ex.name, t.shape, data});
    }
    auto meta = metadata;
    meta.emplace("format", "pt");
    meta.emplace("tied", "embed.weight=head.weight");
    if (maxShardBytes == 0) {
        writeSafetensors(folder / "model.safetensors", out, meta);
    } else {
        // Shards in state_dict order, each up to maxShardBytes of fp32 values (a larger
        // tensor gets a shard of its own), and the index naming each tensor's shard.
        std::vector<std::vector<TensorToWrite>> shards(1);
        uint64_t inShard = 0, total = 0;
        for (const auto& t : out) {
            uint64_t bytes = sizeof(float);
            for (int64_t d : t.shape)
                bytes *= uint64_t(d);
            if (!shards.back().empty() && inShard + bytes > maxShardBytes) {
                shards.emplace_back();
                inShard = 0;
            }
            shards.back().push_back(t);
            inShard += bytes;
            total += bytes;
        }
        char name[64];
        nlohmann::json map = nlohmann::json::object();
        for (std::size_t i = 0; i < shards.size(); ++i) {
            std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
            writeSafetensors(folder / name, shards[i], meta);
            for (const auto& t : shards[i])
                map[t.name] = name;
        }
        const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
        writeFileAtomic(folder / kIndexName, index.dump(2) + "\n");
    }
    writeFileAtomic(folder / "config.json", configToJson(cfg).dump(2) + "\n");
}

std::string hashWeights(const Weights& weights) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const auto& [name, t] : weights) {
        h = fnv1a(name.data(), name.size(), h);
        // Sample large tensors with a stride so hashing a 1B model stays fast, but always
        // include every element of small ones.
        const std::size_t n = t.isBf16() ? t.bf16.size() : t.data.size();
        const std::size_t step = n > (1u << 20) ? n / (1u << 18) : 1;
        for (std::size_t i = 0; i < n; i += step) {
            const float v = t.isBf16() ? bf16ToFloat(t.bf16[i]) : t.data[i];
            h = fnv1a(&v, sizeof(float), h);
        }
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

std::size_t weightBytes(const Weights& weights) {
    std::size_t n = 0;
    for (const auto& [name, t] : weights)
        n += t.bytes();
    return n;
}

int64_t countNonFinite(const std::vector<float>& values) {
    int64_t n = 0;
    for (float v : values)
        n += (std::bit_cast<uint32_t>(v) & 0x7f800000u) == 0x7f800000u;
    return n;
}

std::vector<NonFiniteTensor> findNonFinite(const Weights& weights) {
    std::vector<NonFiniteTensor> out;
    for (const auto& [name, t] : weights) {
        int64_t n = countNonFinite(t.data);
        for (uint16_t h : t.bf16)
            n += (h & 0x7f80u) == 0x7f80u;
        if (n > 0)
            out.push_back({name, n});
    }
    return out;
}

std::string nonFiniteWarning(const std::vector<NonFiniteTensor>& found) {
    if (found.empty())
        return {};
    return std::to_string(found.size()) + (found.size() == 1 ? " weight tensor holds" : " weight tensors hold") +
           " NaN or infinite values (" + describeNonFinite(found) + "): the outputs are not meaningful";
}

std::string describeNonFinite(const std::vector<NonFiniteTensor>& found, std::size_t most) {
    std::string s;
    for (std::size_t i = 0; i < found.size() && i < most; ++i)
        s += (i ? ", " : "") + found[i].name + ": " + std::to_string(found[i].count);
    if (found.size() > most)
        s += " and " + std::to_string(found.size() - most) + " more";
    return s;
}

} // namespace mythos
