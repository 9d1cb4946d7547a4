// hnswlib_peer.cpp - hnswlib as the reference peer of the vector benchmark.
//
// Why: inferkv's vector sets are an HNSW; the plainest well-known HNSW is
// hnswlib (Debian's header-only libhnswlib-dev 0.6.2, /usr/include/hnswlib).
// Called from C++ with no binding in between, its figures are library time,
// the floor any server or binding adds to.
//
// What: loads a dataset directory written by gen_vectors.py (format in
// vecfile.py: 16-byte header "IKVF"/"IKVI", version, rows, cols, then LE
// float32/int32 rows), builds an index in hnswlib's inner-product space
// (distance 1 - dot; the vectors are unit length, so this is cosine) with
// M 16, ef_construction 200, one thread, a fixed random seed, inserting the
// vectors one at a time in file order, and times the inserts.  Then, for each
// EF in the list, it runs every query one at a time on one thread and
// reports recall@k against gt.i32, queries/s and per-query latency.
// Queries are repeated in passes until --min-time seconds have gone by (at
// least one pass): qps is all queries over all passes, qps_median the
// median pass (the steadier figure on a busy machine), qps_best the fastest.
//
// Memory per vector, two ways:
//   layout: what hnswlib's own layout allocates, from its fields:
//     level 0 block  size_data_per_element_ = links (4 + 4*2M) + vector
//                    (4*dim) + label (8), for every slot of max_elements
//     upper levels   size_links_per_element_ (4 + 4*M) per level above 0
//     bookkeeping    element_levels_ (int), linkLists_ (pointer), one
//                    std::mutex per element, the label hash map (a 32-byte
//                    node per entry plus 8 bytes per bucket, libstdc++), and
//                    the visited list (2 bytes per element, one per thread)
//   rss: growth of the process's resident set over the build, which also
//     counts malloc overhead and fragmentation.
//
// Build (peers.sh does it into build/bench/ when missing or stale):
//   g++ -O3 -march=native -std=c++17 -I/usr/include
//       bench/vector/hnswlib_peer.cpp -o build/bench/hnswlib_peer  (one line)
// Run:
//   build/bench/hnswlib_peer DATA_DIR [--ef 10,20,40,80,160,320,640] [--k 10]
//       [--M 16] [--efc 200] [--seed 100] [--min-time 1.0]
// Prints one JSON object on stdout; progress goes to stderr.

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <unistd.h>

namespace {

struct Matrix {
    uint32_t rows = 0, cols = 0;
    bool is_int = false;
    std::vector<float> f;
    std::vector<int32_t> i;
};

[[noreturn]] void die(const std::string &msg) {
    std::fprintf(stderr, "hnswlib_peer: %s\n", msg.c_str());
    std::exit(2);
}

// Reads one vecfile matrix; the host is little-endian (x86-64, arm64).
Matrix load(const std::string &path, bool want_int) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) die("cannot open " + path + " (make the dataset with bench/vector/gen_vectors.py)");
    unsigned char h[16];
    if (std::fread(h, 1, 16, f) != 16) die(path + ": shorter than the 16-byte header");
    Matrix m;
    uint32_t version;
    std::memcpy(&version, h + 4, 4);
    std::memcpy(&m.rows, h + 8, 4);
    std::memcpy(&m.cols, h + 12, 4);
    if (std::memcmp(h, want_int ? "IKVI" : "IKVF", 4) != 0)
        die(path + ": bad magic (want " + (want_int ? "IKVI" : "IKVF") + ")");
    if (version != 1) die(path + ": unknown version " + std::to_string(version));
    size_t count = size_t(m.rows) * m.cols;
    size_t got;
    if (want_int) {
        m.is_int = true;
        m.i.resize(count);
        got = std::fread(m.i.data(), 4, count, f);
    } else {
        m.f.resize(count);
        got = std::fread(m.f.data(), 4, count, f);
    }
    if (got != count) die(path + ": truncated (" + std::to_string(got) + " of " + std::to_string(count) + " values)");
    std::fclose(f);
    return m;
}

long rss_bytes() {
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long pages = 0, resident = 0;
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<int> parse_list(const char *s) {
    std::vector<int> out;
    for (const char *p = s; *p;) {
        char *end;
        long v = std::strtol(p, &end, 10);
        if (end == p || v <= 0) die(std::string("bad --ef list: ") + s);
        out.push_back(int(v));
        p = *end ? end + 1 : end;
    }
    return out;
}

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    size_t at = std::min(v.size() - 1, size_t(q * (v.size() - 1) + 0.5));
    std::nth_element(v.begin(), v.begin() + at, v.end());
    return v[at];
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        std::fprintf(stderr, "usage: %s DATA_DIR [--ef 10,20,...] [--k 10] [--M 16] [--efc 200] [--seed 100] [--min-time 1.0]\n", argv[0]);
        return 2;
    }
    std::string dir = argv[1];
    std::vector<int> efs = {10, 20, 40, 80, 160, 320, 640};
    size_t k = 10, M = 16, efc = 200, seed = 100;
    double min_time = 1.0;
    for (int a = 2; a < argc; a++) {
        std::string opt = argv[a];
        if (a + 1 >= argc) die("missing value for " + opt);
        const char *v = argv[++a];
        if (opt == "--ef") efs = parse_list(v);
        else if (opt == "--k") k = std::strtoul(v, nullptr, 10);
        else if (opt == "--M") M = std::strtoul(v, nullptr, 10);
        else if (opt == "--efc") efc = std::strtoul(v, nullptr, 10);
        else if (opt == "--seed") seed = std::strtoul(v, nullptr, 10);
        else if (opt == "--min-time") min_time = std::atof(v);
        else die("unknown option " + opt);
    }

    Matrix base = load(dir + "/base.f32", false);
    Matrix queries = load(dir + "/queries.f32", false);
    Matrix gt = load(dir + "/gt.i32", true);
    const size_t n = base.rows, dim = base.cols, nq = queries.rows;
    if (queries.cols != dim) die("queries.f32 has dimension " + std::to_string(queries.cols) + ", base.f32 " + std::to_string(dim));
    if (gt.rows != nq) die("gt.i32 has " + std::to_string(gt.rows) + " rows for " + std::to_string(nq) + " queries");
    if (k < 1 || k > gt.cols) die("--k must be between 1 and " + std::to_string(gt.cols));

    // ---- build ----
    hnswlib::InnerProductSpace space(dim);
    long rss0 = rss_bytes();
    std::fprintf(stderr, "hnswlib_peer: building %zu x %zu (M %zu, ef_construction %zu, 1 thread)\n", n, dim, M, efc);
    double t0 = now();
    auto index = std::make_unique<hnswlib::HierarchicalNSW<float>>(&space, n, M, efc, seed);
    double last = t0;
    for (size_t i = 0; i < n; i++) {
        index->addPoint(base.f.data() + i * dim, hnswlib::labeltype(i));
        if ((i & 4095) == 4095 && now() - last > 10) {
            last = now();
            std::fprintf(stderr, "hnswlib_peer: %zu / %zu inserted (%.0f/s)\n", i + 1, n, (i + 1) / (last - t0));
        }
    }
    double build_s = now() - t0;
    long rss1 = rss_bytes();

    // ---- memory from hnswlib's layout ----
    size_t upper_levels = 0;
    int max_level = 0;
    for (size_t i = 0; i < n; i++) {
        upper_levels += size_t(index->element_levels_[i]);
        max_level = std::max(max_level, index->element_levels_[i]);
    }
    double level0 = double(index->max_elements_) * index->size_data_per_element_;
    double upper = double(upper_levels) * index->size_links_per_element_;
    double book = double(n) * (sizeof(int) + sizeof(void *) + sizeof(std::mutex) + sizeof(hnswlib::vl_type)) +
                  double(index->label_lookup_.size()) * 32 + double(index->label_lookup_.bucket_count()) * 8;
    double vec_bytes = double(dim) * sizeof(float);
    double links0 = double(index->size_links_level0_);

    // ---- search ----
    std::string searches;
    std::vector<double> lat(nq);
    for (int ef : efs) {
        index->setEf(size_t(ef));
        size_t hits = 0, passes = 0, done = 0;
        double total = 0, best = 1e300;
        std::vector<double> all_lat, pass_s;
        do {
            double p0 = now();
            for (size_t q = 0; q < nq; q++) {
                double q0 = now();
                auto res = index->searchKnn(queries.f.data() + q * dim, k);
                lat[q] = now() - q0;
                if (passes == 0) {
                    const int32_t *truth = gt.i.data() + q * gt.cols;
                    std::unordered_set<int32_t> want(truth, truth + k);
                    while (!res.empty()) {
                        hits += want.count(int32_t(res.top().second));
                        res.pop();
                    }
                }
            }
            double dt = now() - p0;
            total += dt;
            best = std::min(best, dt);
            pass_s.push_back(dt);
            done += nq;
            passes++;
            all_lat.insert(all_lat.end(), lat.begin(), lat.end());
        } while (total < min_time && passes < 1000);
        double recall = double(hits) / double(nq * k);
        char buf[512];
        std::snprintf(buf, sizeof buf,
                      "%s{\"ef\": %d, \"recall\": %.4f, \"qps\": %.0f, \"qps_median\": %.0f, \"qps_best\": %.0f, "
                      "\"p50_us\": %.1f, \"p99_us\": %.1f, \"passes\": %zu}",
                      searches.empty() ? "" : ", ", ef, recall, done / total, nq / percentile(pass_s, 0.5), nq / best,
                      percentile(all_lat, 0.5) * 1e6, percentile(all_lat, 0.99) * 1e6, passes);
        searches += buf;
        std::fprintf(stderr, "hnswlib_peer: ef %4d recall@%zu %.4f  %8.0f q/s\n", ef, k, recall, done / total);
    }

#if defined(USE_AVX512)
    const char *simd = "avx512";
#elif defined(USE_AVX)
    const char *simd = "avx";
#elif defined(USE_SSE)
    const char *simd = "sse";
#else
    const char *simd = "none";
#endif
    std::printf(
        "{\"library\": \"hnswlib\", \"binding\": \"none (C++)\", \"space\": \"ip\", \"simd\": \"%s\", "
        "\"n\": %zu, \"dim\": %zu, \"queries\": %zu, \"k\": %zu, \"M\": %zu, \"ef_construction\": %zu, "
        "\"seed\": %zu, \"threads\": 1, \"build_seconds\": %.3f, \"inserts_per_s\": %.0f, \"max_level\": %d, "
        "\"memory\": {\"layout_bytes_per_vector\": %.1f, \"rss_bytes_per_vector\": %.1f, "
        "\"vector_bytes\": %.0f, \"level0_links_bytes\": %.0f, \"label_bytes\": 8, "
        "\"upper_links_bytes_per_vector\": %.1f, \"bookkeeping_bytes_per_vector\": %.1f, "
        "\"how\": \"layout = hnswlib fields (level-0 block, upper link lists, levels/pointers/mutex/label map/visited list); "
        "rss = resident-set growth over the build\"}, "
        "\"search\": [%s]}\n",
        simd, n, dim, nq, k, M, efc, seed, build_s, n / build_s, max_level,
        (level0 + upper + book) / n, double(rss1 - rss0) / n, vec_bytes, links0, upper / n, book / n,
        searches.c_str());
    return 0;
}
