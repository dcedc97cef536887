# Latent Textures developer commands. Everything sets itself up into a local venv.
#   make demo          the main job: build a scene, generate a texture, write .blend + PNGs
#   make test          the test suite on bpy 5.0.1 (BPY=4.2.23 for the 4.2 LTS line)
#   make test-all      the suite on both Blender lines, and the engine tests as older CPUs (what CI runs)
#   make test-cpus     the engine tests as older x86 CPUs run them (tools/test_as_cpus.py)
#   make build         the installable extension zip in dist/
#   make bench         the benchmark (bench/results.json + bench/results.md)

PYTHON ?= python3
BPY ?= 5.0.1
BPY_LTS := 4.2.23
VENV := $(if $(filter 5.0.1,$(BPY)),.venv,.venv-bpy$(BPY))
PY := $(abspath $(VENV))/bin/python
REQS := requirements-dev.txt requirements-engine.txt
STAMP := $(VENV)/.installed-bpy$(BPY)-$(shell cat $(REQS) | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
# pytest-xdist: one worker per core, at most 4 (each worker holds bpy, torch and its own tiny models);
# a test file stays on one worker. TEST_WORKERS=0 runs in this process (for pdb).
TEST_WORKERS ?= auto
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile)

.PHONY: setup test test-all test-cpus demo build bench clean

$(STAMP): $(REQS)
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "bpy wheels $(BPY) need Python 3.11, this is " + sys.version'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt "bpy==$(BPY)"
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests $(XDIST) $(PYTEST_ARGS)

test-cpus: $(STAMP)
	$(PY) tools/test_as_cpus.py tests/engine $(XDIST) $(PYTEST_ARGS)

test-all:
	$(MAKE) test BPY=5.0.1
	$(MAKE) test BPY=$(BPY_LTS)
	$(MAKE) test-cpus BPY=5.0.1

demo: $(STAMP)
	$(PY) tools/demo.py --out out/demo

build: $(STAMP)
	$(PY) tools/build_extension.py --out dist

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf dist out .pytest_cache
