# Thin wrapper: every target first installs missing Debian packages
# (scripts/install-deps), then drives CMake/CTest.
BUILD        ?= build
ASAN_BUILD   ?= build-asan
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS         ?= $(shell nproc)
MAKEFLAGS    += --no-print-directory

.PHONY: all deps build test test-asan demo bench fuzz lint format clean

all: build

deps:
	@./scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The sanitizer build runs the whole suite first; the release build's
# CTest summary closes the output.
test: build test-asan
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWARD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@./scripts/demo $(BUILD)/ward

bench: build
	@./bench/envelope $(BUILD)/ward
	@./bench/attest $(BUILD)
	@./bench/eif $(BUILD)/ward
	@./bench/kms $(BUILD)
	@./bench/enclave $(BUILD)
	@./bench/proxy $(BUILD)
	@./bench/agent $(BUILD)
	@./bench/infer $(BUILD)

fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DWARD_FUZZ=ON -DWARD_TESTS=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@./scripts/run-fuzzers $(FUZZ_BUILD) $(FUZZ_SECONDS)

lint: build
	@./scripts/lint $(BUILD)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
